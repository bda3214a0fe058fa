//! Byte sizes with units, as typed on a command line: `4KiB`, `1MiB`, `64MiB`, `4096`.

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// Parses `<integer><unit>` where the unit is one of B, KiB, MiB, GiB, TiB (powers of 1024),
/// kB/KB, MB, GB, TB (powers of 1000), or K, M, G, T (powers of 1024, as dd and fio read them).
/// Case-insensitive; no unit means bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!("{text:?} is not a size: expected e.g. 4KiB, 1MiB, 4096"));
    }
    let value: u64 = digits.parse().map_err(|_| format!("{text:?}: number too large"))?;
    let multiplier = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => MIB,
        "g" | "gib" => GIB,
        "t" | "tib" => TIB,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!("{text:?}: unknown unit {other:?} (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"));
        }
    };
    value.checked_mul(multiplier).ok_or_else(|| format!("{text:?}: size too large"))
}

/// The shortest exact label: 4096 → `4KiB`, 8388608 → `8MiB`, 1000 → `1000B`.
pub fn format_size(bytes: u64) -> String {
    for (unit, size) in [("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
        if bytes >= size && bytes % size == 0 {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binary_and_decimal_units() {
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64mib"), Ok(64 << 20));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10B"), Ok(10));
        assert_eq!(parse_size("5MB"), Ok(5_000_000));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
    }

    #[test]
    fn rejects_garbage_and_overflow() {
        assert!(parse_size("").is_err());
        assert!(parse_size("KiB").is_err());
        assert!(parse_size("4 parsecs").is_err());
        assert!(parse_size("1.5MiB").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("20000000TiB").is_err());
    }

    #[test]
    fn labels_round_trip() {
        for text in ["4KiB", "1MiB", "64MiB", "3GiB", "1000B"] {
            assert_eq!(format_size(parse_size(text).unwrap()), text);
        }
    }
}
