//! The policy language's wildcards: `*` matches any run of characters (including none), `?` any
//! one character. Used for actions (case-insensitive), resources and `StringLike` (case-sensitive).

/// Whether `text` matches `pattern`, case-sensitively.
pub(crate) fn matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    matches_chars(&pattern, &text)
}

/// Whether `text` matches `pattern`, ignoring ASCII case (action names are ASCII).
pub(crate) fn matches_ignore_ascii_case(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let text: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
    matches_chars(&pattern, &text)
}

/// True when `value` holds a wildcard character.
pub(crate) fn has_wildcard(value: &str) -> bool {
    value.contains(['*', '?'])
}

/// Greedy matching with backtracking to the last `*`: linear in practice, worst case
/// O(pattern × text), which the 20 KB policy bound and the 1024-byte key bound keep small.
fn matches_chars(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            last_star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = last_star {
            // Let the last star swallow one more character and retry.
            p = star_p + 1;
            t = star_t + 1;
            last_star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_question_marks_match_as_in_policies() {
        assert!(matches("arn:aws:s3:::b/public/*", "arn:aws:s3:::b/public/a/b.txt"));
        assert!(!matches("arn:aws:s3:::b/public/*", "arn:aws:s3:::b/private/a"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "ac"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(!matches("ABC", "abc"));
        assert!(matches_ignore_ascii_case("s3:get*", "s3:GetObject"));
    }
}
