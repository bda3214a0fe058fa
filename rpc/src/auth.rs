pub const AUTH_HEADER: &str = "x-ignifuge-auth";
pub const TIME_HEADER: &str = "x-ignifuge-time";
/// BLAKE3 (hex) of the request body; shard PUTs use the shard hash header instead.
pub const BODY_HASH_HEADER: &str = "x-ignifuge-body-blake3";

/// Largest accepted difference between a request's timestamp and the receiver's clock.
pub const INTERNODE_CLOCK_SKEW_MAX_MS: u64 = 5 * 60 * 1000;

/// Signs and verifies internode requests with a keyed BLAKE3 MAC over the method, the path and
/// query, a timestamp and the hash of the body. The key is derived from the cluster secret.
pub struct InternodeAuth {
    key: [u8; 32],
}

fn now_ms() -> u64 {
    ignifuge_types::time::now_ms().max(0) as u64
}

impl InternodeAuth {
    pub fn new(cluster_secret: &[u8]) -> Self {
        Self { key: blake3::derive_key("ignifuge 2026 internode request mac v1", cluster_secret) }
    }

    fn mac(&self, method: &str, path_and_query: &str, time_ms: u64, body_hash_hex: &str) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        for part in [method, "\n", path_and_query, "\n", &time_ms.to_string(), "\n", body_hash_hex] {
            hasher.update(part.as_bytes());
        }
        hasher.finalize()
    }

    /// The (time, mac) header values for a request sent now.
    pub fn sign(&self, method: &str, path_and_query: &str, body_hash_hex: &str) -> (String, String) {
        let time = now_ms();
        (time.to_string(), self.mac(method, path_and_query, time, body_hash_hex).to_hex().to_string())
    }

    /// Checks a request's MAC and timestamp. The caller must still check that the body matches
    /// `body_hash_hex`.
    pub fn verify(&self, method: &str, path_and_query: &str, time: &str, mac_hex: &str, body_hash_hex: &str) -> bool {
        let Ok(time_ms) = time.parse::<u64>() else {
            return false;
        };
        if now_ms().abs_diff(time_ms) > INTERNODE_CLOCK_SKEW_MAX_MS {
            return false;
        }
        let Ok(given) = blake3::Hash::from_hex(mac_hex) else {
            return false;
        };
        // blake3::Hash equality is constant-time.
        given == self.mac(method, path_and_query, time_ms, body_hash_hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_the_same_request_and_secret() {
        let auth = InternodeAuth::new(b"secret one");
        let (time, mac) = auth.sign("PUT", "/v1/shards/ab/0/1", "h1");
        assert!(auth.verify("PUT", "/v1/shards/ab/0/1", &time, &mac, "h1"));
        assert!(!auth.verify("GET", "/v1/shards/ab/0/1", &time, &mac, "h1"));
        assert!(!auth.verify("PUT", "/v1/shards/ab/0/2", &time, &mac, "h1"));
        assert!(!auth.verify("PUT", "/v1/shards/ab/0/1", &time, &mac, "h2"));
        assert!(!InternodeAuth::new(b"secret two").verify("PUT", "/v1/shards/ab/0/1", &time, &mac, "h1"));
        let stale = (now_ms() - INTERNODE_CLOCK_SKEW_MAX_MS - 1000).to_string();
        let old_mac = auth.mac("PUT", "/p", stale.parse().unwrap(), "h").to_hex().to_string();
        assert!(!auth.verify("PUT", "/p", &stale, &old_mac, "h"), "old requests are refused");
    }
}
