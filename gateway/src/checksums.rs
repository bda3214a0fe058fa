//! Client checksums (CRC32, CRC32C, CRC64NVME, SHA1, SHA256) and the MD5 ETag, computed
//! incrementally over a body, and checked against what the client announced.

use crate::error::GatewayError;
use base64::Engine as _;
use ignifuge_meta::Checksums;
use md5::Digest as _;

/// The S3 checksum algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl Algorithm {
    pub fn parse(name: &str) -> Result<Self, GatewayError> {
        Ok(match name.to_ascii_uppercase().as_str() {
            "CRC32" => Self::Crc32,
            "CRC32C" => Self::Crc32c,
            "CRC64NVME" => Self::Crc64Nvme,
            "SHA1" => Self::Sha1,
            "SHA256" => Self::Sha256,
            other => {
                return Err(GatewayError::InvalidRequest(format!("unknown checksum algorithm {other}")));
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    /// The trailer / header name carrying this checksum.
    pub fn header(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// Whether `value` can be a checksum of this algorithm: base64 of its digest's length.
    pub fn is_well_formed(self, value: &str) -> bool {
        let bytes = match self {
            Self::Crc32 | Self::Crc32c => 4,
            Self::Crc64Nvme => 8,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        };
        base64::engine::general_purpose::STANDARD.decode(value.trim()).is_ok_and(|d| d.len() == bytes)
    }

    pub fn from_header(name: &str) -> Option<Self> {
        [Self::Crc32, Self::Crc32c, Self::Crc64Nvme, Self::Sha1, Self::Sha256]
            .into_iter()
            .find(|a| a.header().eq_ignore_ascii_case(name))
    }

    pub fn get(self, sums: &Checksums) -> Option<&String> {
        match self {
            Self::Crc32 => sums.crc32.as_ref(),
            Self::Crc32c => sums.crc32c.as_ref(),
            Self::Crc64Nvme => sums.crc64nvme.as_ref(),
            Self::Sha1 => sums.sha1.as_ref(),
            Self::Sha256 => sums.sha256.as_ref(),
        }
    }

    pub fn set(self, sums: &mut Checksums, value: String) {
        let slot = match self {
            Self::Crc32 => &mut sums.crc32,
            Self::Crc32c => &mut sums.crc32c,
            Self::Crc64Nvme => &mut sums.crc64nvme,
            Self::Sha1 => &mut sums.sha1,
            Self::Sha256 => &mut sums.sha256,
        };
        *slot = Some(value);
    }
}

enum Hasher {
    Crc(crc_fast::Digest, usize),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    fn new(algorithm: Algorithm) -> Self {
        use crc_fast::CrcAlgorithm as C;
        match algorithm {
            Algorithm::Crc32 => Self::Crc(crc_fast::Digest::new(C::Crc32IsoHdlc), 4),
            Algorithm::Crc32c => Self::Crc(crc_fast::Digest::new(C::Crc32Iscsi), 4),
            Algorithm::Crc64Nvme => Self::Crc(crc_fast::Digest::new(C::Crc64Nvme), 8),
            Algorithm::Sha1 => Self::Sha1(sha1::Sha1::new()),
            Algorithm::Sha256 => Self::Sha256(sha2::Sha256::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc(d, _) => d.update(data),
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
        }
    }

    fn finalize(self) -> Vec<u8> {
        match self {
            Self::Crc(d, width) => d.finalize().to_be_bytes()[8 - width..].to_vec(),
            Self::Sha1(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// MD5 plus the requested checksums over one body.
pub struct BodyHasher {
    md5: md5::Md5,
    others: Vec<(Algorithm, Hasher)>,
}

/// What a body hashed to.
#[derive(Clone, Debug)]
pub struct BodyDigests {
    pub md5: [u8; 16],
    pub checksums: Checksums,
}

impl BodyHasher {
    pub fn new(algorithms: &[Algorithm]) -> Self {
        let mut others: Vec<(Algorithm, Hasher)> = Vec::new();
        for &a in algorithms {
            if !others.iter().any(|(b, _)| *b == a) {
                others.push((a, Hasher::new(a)));
            }
        }
        Self { md5: md5::Md5::new(), others }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        for (_, h) in &mut self.others {
            h.update(data);
        }
    }

    pub fn finalize(self) -> BodyDigests {
        let mut checksums = Checksums::default();
        for (a, h) in self.others {
            a.set(&mut checksums, base64(&h.finalize()));
        }
        let mut md5 = [0u8; 16];
        md5.copy_from_slice(&self.md5.finalize());
        BodyDigests { md5, checksums }
    }
}

/// What the client announced about a body, checked once the body has been read.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    /// Content-MD5, base64.
    pub content_md5: Option<String>,
    /// x-amz-checksum-* values given as headers.
    pub checksums: Vec<(Algorithm, String)>,
    /// Algorithms announced in x-amz-trailer (values arrive after the body) or
    /// x-amz-checksum-algorithm / x-amz-sdk-checksum-algorithm (the server computes it).
    pub computed: Vec<Algorithm>,
    /// Those announced in x-amz-trailer: each must arrive (a body whose announced checksum never
    /// came is refused, never stored unchecked).
    pub trailed: Vec<Algorithm>,
}

impl Expected {
    /// Every algorithm whose digest must be computed.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        let mut all: Vec<Algorithm> = self.checksums.iter().map(|(a, _)| *a).collect();
        all.extend(self.computed.iter().copied());
        all
    }

    /// The Content-MD5 given, decoded: 400 InvalidDigest when it is not base64 of 16 bytes (a
    /// PutObject or UploadPart asks before it reads the body, as AWS refuses it).
    pub fn content_md5(&self) -> Result<Option<Vec<u8>>, GatewayError> {
        let Some(md5) = &self.content_md5 else { return Ok(None) };
        match base64::engine::general_purpose::STANDARD.decode(md5.trim()) {
            Ok(given) if given.len() == 16 => Ok(Some(given)),
            _ => Err(GatewayError::InvalidDigest("the Content-MD5 you specified was invalid".into())),
        }
    }

    /// Checks the digests; `trailers` are the (name, value) pairs received after the body.
    pub fn verify(&self, digests: &BodyDigests, trailers: &[(String, String)]) -> Result<(), GatewayError> {
        if let Some(given) = self.content_md5()? {
            if given != digests.md5 {
                return Err(GatewayError::BadDigest(
                    "the Content-MD5 you specified did not match what we received".into(),
                ));
            }
        }
        let mut wanted: Vec<(Algorithm, &str)> = self.checksums.iter().map(|(a, v)| (*a, v.as_str())).collect();
        for (name, value) in trailers {
            if let Some(a) = Algorithm::from_header(name) {
                wanted.push((a, value.as_str()));
            }
        }
        if let Some(missing) =
            self.trailed.iter().find(|a| !trailers.iter().any(|(n, _)| Algorithm::from_header(n) == Some(**a)))
        {
            return Err(GatewayError::InvalidRequest(format!(
                "the x-amz-trailer header announced {} but the request carried no such trailer",
                missing.header()
            )));
        }
        for (a, value) in wanted {
            // Every header's algorithm and every announced trailer's is computed: one missing is
            // a trailer that x-amz-trailer did not announce.
            let computed = a.get(&digests.checksums).ok_or_else(|| {
                GatewayError::InvalidRequest(format!(
                    "the request carried a {} trailer that x-amz-trailer did not announce",
                    a.header()
                ))
            })?;
            if computed != value.trim() {
                return Err(GatewayError::BadDigest(format!(
                    "the {} you specified did not match the calculated checksum",
                    a.header()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(algorithms: &[Algorithm], data: &[u8]) -> BodyDigests {
        let mut h = BodyHasher::new(algorithms);
        let (a, b) = data.split_at(data.len() / 3);
        h.update(a);
        h.update(b);
        h.finalize()
    }

    #[test]
    fn checksums_match_published_test_vectors() {
        let all = [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme, Algorithm::Sha1, Algorithm::Sha256];
        let d = digest(&all, b"123456789");
        // CRC-32/ISO-HDLC check value 0xCBF43926, CRC-32C 0xE3069283, CRC-64/NVME 0xAE8B14860A799888.
        assert_eq!(d.checksums.crc32.as_deref(), Some(base64(&0xCBF43926u32.to_be_bytes()).as_str()));
        assert_eq!(d.checksums.crc32c.as_deref(), Some(base64(&0xE3069283u32.to_be_bytes()).as_str()));
        assert_eq!(d.checksums.crc64nvme.as_deref(), Some(base64(&0xAE8B14860A799888u64.to_be_bytes()).as_str()));
        assert_eq!(hex::encode(d.md5), "25f9e794323b453885f5181f1b624d0b");
        let abc = digest(&[Algorithm::Sha256, Algorithm::Sha1], b"abc");
        assert_eq!(abc.checksums.sha1.as_deref(), Some("qZk+NkcGgWq6PiVxeFDCbJzQ2J0="));
        assert_eq!(abc.checksums.sha256.as_deref(), Some("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="));
    }

    #[test]
    fn mismatches_are_bad_digests_and_malformed_md5_is_invalid() {
        let d = digest(&[Algorithm::Crc32], b"hello");
        let good = Expected {
            content_md5: Some(base64(&d.md5)),
            checksums: vec![(Algorithm::Crc32, d.checksums.crc32.clone().unwrap())],
            ..Default::default()
        };
        good.verify(&d, &[]).unwrap();
        let wrong_md5 = Expected { content_md5: Some(base64(&[0u8; 16])), ..Default::default() };
        assert!(matches!(wrong_md5.verify(&d, &[]), Err(GatewayError::BadDigest(_))));
        let malformed = Expected { content_md5: Some("not base64!".into()), ..Default::default() };
        assert!(matches!(malformed.verify(&d, &[]), Err(GatewayError::InvalidDigest(_))));
        let trailer =
            Expected { computed: vec![Algorithm::Crc32], trailed: vec![Algorithm::Crc32], ..Default::default() };
        let missing = trailer.verify(&d, &[]).unwrap_err();
        assert!(
            matches!(missing, GatewayError::InvalidRequest(_)),
            "an announced trailer that never came: {missing:?}"
        );
        trailer.verify(&d, &[("x-amz-checksum-crc32".into(), d.checksums.crc32.clone().unwrap())]).unwrap();
        assert!(matches!(
            trailer.verify(&d, &[("x-amz-checksum-crc32".into(), "AAAAAA==".into())]),
            Err(GatewayError::BadDigest(_))
        ));
    }
}
