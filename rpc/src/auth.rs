use ignifuge_meta::DATA_FORMAT;

pub const AUTH_HEADER: &str = "x-ignifuge-auth";
pub const TIME_HEADER: &str = "x-ignifuge-time";
/// The data format of the process that sent the request (`ignifuge_meta::DATA_FORMAT`), covered
/// by the MAC: a node refuses requests of any other format.
pub const FORMAT_HEADER: &str = "x-ignifuge-format";
/// BLAKE3 (hex) of the request body; shard PUTs use the shard hash header instead.
pub const BODY_HASH_HEADER: &str = "x-ignifuge-body-blake3";

/// Largest accepted difference between a request's timestamp and the receiver's clock.
pub const INTERNODE_CLOCK_SKEW_MAX_MS: u64 = 5 * 60 * 1000;

/// Signs and verifies internode requests with a keyed BLAKE3 MAC over the sender's data format,
/// the method, the path and query, a timestamp and the hash of the body. The key is derived from
/// the cluster secret.
///
/// The data format is signed so that processes of two versions never act on each other's
/// requests: one running cluster is one format (a gateway left running from an older version
/// would otherwise propose commands in their older shape, which the state machine applies as
/// older entries, and a node of an older version would be sent entries it cannot decode). A
/// version before formats were signed sends no format and a MAC without it: refused as
/// unauthenticated, as is a format header changed in transit.
pub struct InternodeAuth {
    key: [u8; 32],
}

/// Why a node refuses a request (`InternodeAuth::verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No valid MAC for the request as received (not of this cluster, forged, stale, changed in
    /// transit, or from a version that did not sign its format).
    Unauthenticated,
    /// Signed with the cluster's key by a process of another data format (named).
    OtherFormat(String),
}

fn now_ms() -> u64 {
    ignifuge_types::time::now_ms().max(0) as u64
}

impl InternodeAuth {
    pub fn new(cluster_secret: &[u8]) -> Self {
        Self { key: blake3::derive_key("ignifuge 2026 internode request mac v1", cluster_secret) }
    }

    fn mac(&self, format: &str, method: &str, path_and_query: &str, time_ms: u64, body_hash_hex: &str) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        let time = time_ms.to_string();
        for part in [format, "\n", method, "\n", path_and_query, "\n", &time, "\n", body_hash_hex] {
            hasher.update(part.as_bytes());
        }
        hasher.finalize()
    }

    /// The headers that authenticate a request sent now by this version: its time, its data
    /// format and the MAC.
    pub fn signed_headers(
        &self,
        method: &str,
        path_and_query: &str,
        body_hash_hex: &str,
    ) -> [(&'static str, String); 3] {
        self.signed_headers_of(DATA_FORMAT, method, path_and_query, body_hash_hex)
    }

    fn signed_headers_of(
        &self,
        format: &str,
        method: &str,
        path_and_query: &str,
        body_hash_hex: &str,
    ) -> [(&'static str, String); 3] {
        let time = now_ms();
        let mac = self.mac(format, method, path_and_query, time, body_hash_hex).to_hex().to_string();
        [(TIME_HEADER, time.to_string()), (FORMAT_HEADER, format.to_string()), (AUTH_HEADER, mac)]
    }

    /// Checks a request's MAC, timestamp and data format, given its `TIME_HEADER`,
    /// `FORMAT_HEADER` and `AUTH_HEADER` values. The caller must still check that the body
    /// matches `body_hash_hex`. The format is judged only once the MAC holds: who is not of the
    /// cluster learns nothing of it.
    pub fn verify(
        &self,
        method: &str,
        path_and_query: &str,
        time: &str,
        format: &str,
        mac_hex: &str,
        body_hash_hex: &str,
    ) -> Result<(), Refusal> {
        let Ok(time_ms) = time.parse::<u64>() else {
            return Err(Refusal::Unauthenticated);
        };
        if now_ms().abs_diff(time_ms) > INTERNODE_CLOCK_SKEW_MAX_MS {
            return Err(Refusal::Unauthenticated);
        }
        let Ok(given) = blake3::Hash::from_hex(mac_hex) else {
            return Err(Refusal::Unauthenticated);
        };
        // blake3::Hash equality is constant-time.
        if given != self.mac(format, method, path_and_query, time_ms, body_hash_hex) {
            return Err(Refusal::Unauthenticated);
        }
        if format != DATA_FORMAT {
            return Err(Refusal::OtherFormat(format.to_string()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(headers: &[(&'static str, String); 3]) -> (String, String, String) {
        let value = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()).unwrap();
        (value(TIME_HEADER), value(FORMAT_HEADER), value(AUTH_HEADER))
    }

    #[test]
    fn a_signature_verifies_only_for_the_same_request_and_secret() {
        let auth = InternodeAuth::new(b"secret one");
        let (time, format, mac) = values(&auth.signed_headers("PUT", "/v1/shards/ab/0/1", "h1"));
        assert_eq!(format, DATA_FORMAT);
        let verify = |auth: &InternodeAuth, method, path, time: &str, format: &str, body| {
            auth.verify(method, path, time, format, &mac, body)
        };
        assert_eq!(verify(&auth, "PUT", "/v1/shards/ab/0/1", &time, &format, "h1"), Ok(()));
        let refused = Err(Refusal::Unauthenticated);
        assert_eq!(verify(&auth, "GET", "/v1/shards/ab/0/1", &time, &format, "h1"), refused);
        assert_eq!(verify(&auth, "PUT", "/v1/shards/ab/0/2", &time, &format, "h1"), refused);
        assert_eq!(verify(&auth, "PUT", "/v1/shards/ab/0/1", &time, &format, "h2"), refused);
        assert_eq!(
            verify(&InternodeAuth::new(b"secret two"), "PUT", "/v1/shards/ab/0/1", &time, &format, "h1"),
            refused
        );
        let stale = (now_ms() - INTERNODE_CLOCK_SKEW_MAX_MS - 1000).to_string();
        let old_mac = auth.mac(DATA_FORMAT, "PUT", "/p", stale.parse().unwrap(), "h").to_hex().to_string();
        assert_eq!(auth.verify("PUT", "/p", &stale, DATA_FORMAT, &old_mac, "h"), refused, "old requests are refused");
    }

    /// A request signed by a process of another data format is refused as such; one whose format
    /// header was changed, or left out, is not authenticated at all, and neither is one signed as
    /// the versions before signed formats did (no format in the MAC).
    #[test]
    fn a_request_of_another_data_format_is_refused() {
        let auth = InternodeAuth::new(b"secret");
        let other = (DATA_FORMAT.parse::<u32>().unwrap() - 1).to_string();
        let (time, format, mac) = values(&auth.signed_headers_of(&other, "DELETE", "/v1/shards/ab", ""));
        assert_eq!(format, other);
        assert_eq!(
            auth.verify("DELETE", "/v1/shards/ab", &time, &other, &mac, ""),
            Err(Refusal::OtherFormat(other.clone()))
        );
        for changed in [DATA_FORMAT, ""] {
            let refused = auth.verify("DELETE", "/v1/shards/ab", &time, changed, &mac, "");
            assert_eq!(refused, Err(Refusal::Unauthenticated), "format header {changed:?}");
        }
        // Another format, but not of this cluster: the MAC is judged first, and the format is
        // not told.
        let (time, _, mac) =
            values(&InternodeAuth::new(b"another").signed_headers_of(&other, "DELETE", "/v1/shards/ab", ""));
        assert_eq!(auth.verify("DELETE", "/v1/shards/ab", &time, &other, &mac, ""), Err(Refusal::Unauthenticated));
        let (time, _, mac) = values(&auth.signed_headers("DELETE", "/v1/shards/ab", ""));
        assert_eq!(auth.verify("DELETE", "/v1/shards/ab", &time, "", &mac, ""), Err(Refusal::Unauthenticated));
        // The MAC of the versions before: the same key, no format among the parts.
        let mut unformatted = blake3::Hasher::new_keyed(&auth.key);
        for part in ["DELETE", "\n", "/v1/shards/ab", "\n", &time, "\n", ""] {
            unformatted.update(part.as_bytes());
        }
        let unformatted = unformatted.finalize().to_hex().to_string();
        for format in ["", DATA_FORMAT] {
            let refused = auth.verify("DELETE", "/v1/shards/ab", &time, format, &unformatted, "");
            assert_eq!(refused, Err(Refusal::Unauthenticated), "an unformatted MAC with format {format:?}");
        }
    }
}
