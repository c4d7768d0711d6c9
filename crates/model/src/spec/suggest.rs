//! "Did you mean …?" suggestions.

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    #[test]
    fn suggests_near_misses_only() {
        let fields = ["depends_on", "description", "trigger_rule"];
        assert_eq!(super::closest("dependson", fields), Some("depends_on"));
        assert_eq!(super::closest("tigger_rule", fields), Some("trigger_rule"));
        assert_eq!(super::closest("zzz", fields), None);
    }
}
