use crate::RpcError;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;

/// Seals access-key secrets for storage in the metadata. SigV4 needs the secret itself on the
/// server (it is an HMAC key), so it cannot be hashed; instead the metadata, its snapshots and
/// its disks hold only ChaCha20-Poly1305 ciphertext under a key derived from the cluster secret,
/// which lives in one 0600 file on each host and never in the metadata.
pub struct SecretSealer {
    cipher: ChaCha20Poly1305,
}

const NONCE_BYTES: usize = 12;

impl SecretSealer {
    pub fn new(cluster_secret: &[u8]) -> Self {
        let key = blake3::derive_key("ignifuge 2026 access key sealing v1", cluster_secret);
        Self { cipher: ChaCha20Poly1305::new(Key::from_slice(&key)) }
    }

    /// `context` (the access key id) is bound as associated data, so a sealed secret cannot be
    /// moved to another key's record.
    pub fn seal(&self, context: &str, secret: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let payload = chacha20poly1305::aead::Payload { msg: secret.as_bytes(), aad: context.as_bytes() };
        let sealed = self.cipher.encrypt(Nonce::from_slice(&nonce), payload).expect("sealing in memory cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    pub fn open(&self, context: &str, sealed: &str) -> Result<String, RpcError> {
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(sealed).map_err(|e| RpcError::Sealing(e.to_string()))?;
        if bytes.len() < NONCE_BYTES {
            return Err(RpcError::Sealing("sealed secret too short".into()));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let payload = chacha20poly1305::aead::Payload { msg: ciphertext, aad: context.as_bytes() };
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| RpcError::Sealing("sealed secret does not open with this cluster secret".into()))?;
        String::from_utf8(plain).map_err(|e| RpcError::Sealing(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_cluster_secret_and_key_id() {
        let sealer = SecretSealer::new(b"cluster");
        let sealed = sealer.seal("AKID1", "very secret");
        assert!(!sealed.contains("very secret"));
        assert_eq!(sealer.open("AKID1", &sealed).unwrap(), "very secret");
        assert!(sealer.open("AKID2", &sealed).is_err());
        assert!(SecretSealer::new(b"other").open("AKID1", &sealed).is_err());
    }
}
