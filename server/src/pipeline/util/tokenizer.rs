//! Muted-keyword matching (spec §4.2): NFKC, lowercase; tokens are maximal
//! runs of letters, digits or `_` (so a leading `#` or `@` drops away and
//! "cats" matches "#cats"); every CJK ideograph is a token of its own. A
//! keyword matches iff its token sequence appears contiguously in the
//! text's tokens; an empty keyword never matches.

use unicode_normalization::UnicodeNormalization;

/// The tokens of `text`.
pub fn tokenize(text: &str) -> Vec<String> {
    let normalized: String = text.nfkc().flat_map(char::to_lowercase).collect();
    let mut tokens = Vec::new();
    let mut cur = String::new();
    for ch in normalized.chars() {
        if is_ideograph(ch) {
            if !cur.is_empty() {
                tokens.push(std::mem::take(&mut cur));
            }
            tokens.push(ch.to_string());
        } else if ch.is_alphanumeric() || ch == '_' {
            cur.push(ch);
        } else if !cur.is_empty() {
            tokens.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    tokens
}

/// CJK unified ideographs (main block and extensions A–F), compatibility
/// ideographs.
fn is_ideograph(ch: char) -> bool {
    matches!(ch as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// Muted phrases, tokenized once per request.
#[derive(Debug, Clone, Default)]
pub struct MutedPhrases {
    phrases: Vec<Vec<String>>,
}

impl MutedPhrases {
    /// The non-empty phrases among `keywords`.
    pub fn new(keywords: &[String]) -> Self {
        Self {
            phrases: keywords
                .iter()
                .map(|k| tokenize(k))
                .filter(|t| !t.is_empty())
                .collect(),
        }
    }

    /// True when there is nothing to match.
    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty()
    }

    /// True if any phrase appears contiguously in `text`.
    pub fn matches(&self, text: &str) -> bool {
        if self.phrases.is_empty() {
            return false;
        }
        let tokens = tokenize(text);
        self.phrases
            .iter()
            .any(|p| tokens.windows(p.len()).any(|w| w == p.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn muted(k: &[&str]) -> MutedPhrases {
        MutedPhrases::new(&k.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn tokens_fold_case_width_and_drop_hash_and_at() {
        assert_eq!(
            tokenize("Hello, #Cats @bob_1!"),
            vec!["hello", "cats", "bob_1"]
        );
        assert_eq!(tokenize("ＦＵＬＬ width"), vec!["full", "width"]);
        // Kana are letters, not ideographs: only 猫 and 好 stand alone.
        assert_eq!(tokenize("猫が好きcat"), vec!["猫", "が", "好", "きcat"]);
    }

    #[test]
    fn phrases_match_contiguous_tokens_only() {
        let m = muted(&["cats", "new york"]);
        assert!(m.matches("I love #CATS"));
        assert!(m.matches("New  York!"));
        assert!(!m.matches("york new"), "order matters");
        assert!(!m.matches("new jersey york"), "contiguous");
        assert!(!m.matches("concatenate"), "whole tokens");
        assert!(muted(&["猫"]).matches("黒猫です"));
    }

    #[test]
    fn empty_keywords_never_match() {
        let m = muted(&["", "  ", "#"]);
        assert!(m.is_empty());
        assert!(!m.matches("anything # at all"));
    }
}
