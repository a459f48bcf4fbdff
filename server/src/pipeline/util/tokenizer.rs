//! Muted-keyword matching (spec §4.2): NFKC, lowercase; tokens are maximal
//! runs of letters, digits or `_` (so a leading `#` or `@` drops away and
//! "cats" matches "#cats"); every CJK ideograph is a token of its own. A
//! keyword matches iff its token sequence appears contiguously in the
//! text's tokens; an empty keyword never matches.
//!
//! A post's text is tokenised once into [`TweetTokens`] (kept beside the
//! post by `TweetTokenCache`), so a request only matches: its few muted
//! keywords become [`MutedPhrases`] and each candidate costs one pass over
//! its token hashes. A hash is only a shortcut: a phrase matches when the
//! token strings themselves are equal, exactly as without hashes.

use std::sync::Arc;

use unicode_normalization::UnicodeNormalization;
use xxhash_rust::xxh3::xxh3_64;

/// The tokens of `text`.
pub fn tokenize(text: &str) -> Vec<String> {
    let (chars, ends) = tokens_back_to_back(text);
    let mut start = 0;
    ends.iter()
        .map(|&end| {
            let token = chars[start..end].to_owned();
            start = end;
            token
        })
        .collect()
}

/// The tokens of `text` written one after another, and where each ends.
fn tokens_back_to_back(text: &str) -> (String, Vec<usize>) {
    let mut chars = String::with_capacity(text.len());
    let mut ends = Vec::new();
    // Whether `chars` ends in a token that may still grow.
    let mut open = false;
    for ch in text.nfkc().flat_map(char::to_lowercase) {
        if is_ideograph(ch) {
            if open {
                ends.push(chars.len());
            }
            chars.push(ch);
            ends.push(chars.len());
            open = false;
        } else if ch.is_alphanumeric() || ch == '_' {
            chars.push(ch);
            open = true;
        } else if open {
            ends.push(chars.len());
            open = false;
        }
    }
    if open {
        ends.push(chars.len());
    }
    (chars, ends)
}

/// CJK unified ideographs (main block and extensions A–F), compatibility
/// ideographs.
fn is_ideograph(ch: char) -> bool {
    matches!(ch as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// The hash that stands in for a token when looking for a phrase's start.
fn token_hash(token: &str) -> u64 {
    xxh3_64(token.as_bytes())
}

/// One text's tokens, made once and matched by every request: the text they
/// came from (so a user can check they are still its tokens), the tokens
/// back to back, where each ends, and each one's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TweetTokens {
    text: Arc<str>,
    chars: Box<str>,
    ends: Box<[usize]>,
    hashes: Box<[u64]>,
}

impl TweetTokens {
    /// Tokenises `text`.
    pub fn new(text: &str) -> Self {
        Self::of_shared(text.into())
    }

    /// Tokenises `text`, keeping that allocation as its text (so
    /// [`Self::is_of`] recognises the same `Arc` by its address).
    pub fn of_shared(text: Arc<str>) -> Self {
        let (chars, ends) = tokens_back_to_back(&text);
        let mut start = 0;
        let hashes = ends
            .iter()
            .map(|&end| {
                let h = token_hash(&chars[start..end]);
                start = end;
                h
            })
            .collect();
        Self {
            text,
            chars: chars.into_boxed_str(),
            ends: ends.into_boxed_slice(),
            hashes,
        }
    }

    /// The text these are the tokens of.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// True when these are the tokens of `text`: the same allocation
    /// (a pointer check: posts share their text), else equal contents.
    pub fn is_of(&self, text: &str) -> bool {
        (std::ptr::eq(self.text.as_ptr(), text.as_ptr()) && self.text.len() == text.len())
            || *self.text == *text
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when the text has no token.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`-th token; `i < len()`.
    fn token(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.chars[start..self.ends[i]]
    }

    /// The tokens in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.token(i))
    }
}

/// One muted phrase: its tokens (never none) and their hashes.
#[derive(Debug, Clone)]
struct Phrase {
    tokens: Vec<String>,
    hashes: Vec<u64>,
}

/// Bits in [`MutedPhrases`]' first-token filter.
const FIRST_BITS: u64 = 1024;

/// Where a token hash falls in [`MutedPhrases`]' first-token filter: the
/// word and the bit in it.
fn first_bit(hash: u64) -> (usize, u64) {
    let bit = hash % FIRST_BITS;
    // Lossless: bit / 64 < 16.
    ((bit / 64) as usize, 1 << (bit % 64))
}

/// Muted phrases, tokenized once per request.
#[derive(Debug, Clone)]
pub struct MutedPhrases {
    /// Sorted by the hash of their first token.
    phrases: Vec<Phrase>,
    /// A bit per first-token hash (modulo [`FIRST_BITS`]): most text tokens
    /// start no phrase and are passed over with one look here.
    firsts: [u64; FIRST_BITS as usize / 64],
}

impl Default for MutedPhrases {
    fn default() -> Self {
        Self::new(&[])
    }
}

impl MutedPhrases {
    /// The non-empty phrases among `keywords`.
    pub fn new(keywords: &[String]) -> Self {
        let mut phrases: Vec<Phrase> = keywords
            .iter()
            .map(|k| tokenize(k))
            .filter(|t| !t.is_empty())
            .map(|tokens| Phrase {
                hashes: tokens.iter().map(|t| token_hash(t)).collect(),
                tokens,
            })
            .collect();
        phrases.sort_by_key(|p| p.hashes[0]);
        let mut firsts = [0; FIRST_BITS as usize / 64];
        for p in &phrases {
            let (word, bit) = first_bit(p.hashes[0]);
            firsts[word] |= bit;
        }
        Self { phrases, firsts }
    }

    /// True when there is nothing to match.
    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty()
    }

    /// True if any phrase appears contiguously in `text` (tokenised now).
    pub fn matches(&self, text: &str) -> bool {
        !self.phrases.is_empty() && self.matches_tokens(&TweetTokens::new(text))
    }

    /// True if any phrase appears contiguously in `text`'s tokens.
    pub fn matches_tokens(&self, text: &TweetTokens) -> bool {
        text.hashes.iter().enumerate().any(|(i, &h)| {
            let (word, bit) = first_bit(h);
            if self.firsts[word] & bit == 0 {
                return false;
            }
            let from = self.phrases.partition_point(|p| p.hashes[0] < h);
            self.phrases[from..]
                .iter()
                .take_while(|p| p.hashes[0] == h)
                .any(|p| {
                    let end = i + p.tokens.len();
                    end <= text.len()
                        && text.hashes[i..end] == p.hashes[..]
                        && p.tokens
                            .iter()
                            .enumerate()
                            .all(|(j, t)| text.token(i + j) == t)
                })
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use proptest::sample::{Index, select};
    use proptest::strategy::ValueTree;

    use super::*;

    /// The matcher as it was before texts were tokenised ahead of time
    /// (every request tokenised every text): the oracle the precomputed
    /// tokens must agree with.
    pub(crate) mod oracle {
        use unicode_normalization::UnicodeNormalization;

        /// The tokens of `text`.
        pub(crate) fn tokenize(text: &str) -> Vec<String> {
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

        fn is_ideograph(ch: char) -> bool {
            matches!(ch as u32,
                0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
        }

        /// True if some keyword with tokens appears contiguously in `text`.
        pub(crate) fn matches(keywords: &[String], text: &str) -> bool {
            let phrases: Vec<Vec<String>> = keywords
                .iter()
                .map(|k| tokenize(k))
                .filter(|t| !t.is_empty())
                .collect();
            if phrases.is_empty() {
                return false;
            }
            let tokens = tokenize(text);
            phrases
                .iter()
                .any(|p| tokens.windows(p.len()).any(|w| w == p.as_slice()))
        }
    }

    /// Pieces texts and keywords are made of: words in several cases and
    /// widths, text NFKC rewrites (ligatures, compatibility letters and
    /// digits, combining marks that compose with what comes before),
    /// ideographs and kana, and the separators between tokens.
    const PIECES: &[&str] = &[
        "cats",
        "Cats",
        "CATS",
        "ＣＡＴＳ",
        "ｃａｔｓ",
        "cat",
        "new",
        "New",
        "york",
        "YORK",
        "ﬁsh",
        "fish",
        "café",
        "cafe\u{301}",
        "CAFÉ",
        "\u{212B}",
        "å",
        "ß",
        "SS",
        "İstanbul",
        "istanbul",
        "ǅ",
        "dž",
        "Σ",
        "σ",
        "ς",
        "x²",
        "x2",
        "①",
        "1",
        "½",
        "Ⅸ",
        "ix",
        "㎏",
        "kg",
        "猫",
        "黒猫",
        "東京",
        "ねこ",
        "\u{F900}",
        "豈",
        "🔥",
        "_",
        "snake_case",
        "a_b",
        "42",
        "٤٢",
        "e",
        "\u{301}",
        "\u{308}",
        " ",
        "  ",
        "\u{3000}",
        "\t",
        "\n",
        "\u{a0}",
        "#",
        "@",
        ",",
        ".",
        "!",
        "-",
        "'",
        "’",
        "…",
    ];

    /// A text of up to 24 pieces, and up to 4 keywords of up to 3 pieces
    /// plus one cut from the text (upper-cased half the time), so that
    /// both decisions come up often.
    pub(crate) fn text_and_keywords() -> impl Strategy<Value = (String, Vec<String>)> {
        let pieces = || prop::collection::vec(select(PIECES), 0..=24);
        let keyword = prop::collection::vec(select(PIECES), 0..=3).prop_map(|p| p.concat());
        (
            pieces(),
            prop::collection::vec(keyword, 0..=4),
            any::<Index>(),
            0usize..=4,
            any::<bool>(),
        )
            .prop_map(|(text, mut keywords, start, len, upper)| {
                if !text.is_empty() {
                    let start = start.index(text.len());
                    let cut = text[start..(start + len).min(text.len())].concat();
                    keywords.push(if upper { cut.to_uppercase() } else { cut });
                }
                (text.concat(), keywords)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn precomputed_tokens_decide_as_tokenising_per_request(
            (text, keywords) in text_and_keywords()
        ) {
            let want = oracle::matches(&keywords, &text);
            let muted = MutedPhrases::new(&keywords);
            let tokens = TweetTokens::new(&text);
            prop_assert_eq!(muted.matches_tokens(&tokens), want);
            prop_assert_eq!(muted.matches(&text), want);
            prop_assert_eq!(tokens.text(), text.as_str());
            prop_assert_eq!(tokens.iter().collect::<Vec<_>>(), oracle::tokenize(&text));
            prop_assert_eq!(tokenize(&text), oracle::tokenize(&text));
        }
    }

    #[test]
    fn equivalence_inputs_produce_both_decisions() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let cases = text_and_keywords();
        let matched = (0..1000)
            .filter(|_| {
                let (text, keywords) = cases
                    .new_tree(&mut runner)
                    .expect("the strategy never rejects")
                    .current();
                oracle::matches(&keywords, &text)
            })
            .count();
        assert!((250..=750).contains(&matched), "{matched} of 1000 matched");
    }

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
    fn phrases_sharing_a_first_token_are_all_tried() {
        let m = muted(&["new york", "new jersey", "new"]);
        assert!(m.matches_tokens(&TweetTokens::new("a New Jersey bagel")));
        assert!(m.matches_tokens(&TweetTokens::new("brand new")));
        let m = muted(&["new york", "new jersey"]);
        assert!(!m.matches_tokens(&TweetTokens::new("new, as in new")));
        assert!(
            !m.matches_tokens(&TweetTokens::new("visit new")),
            "a phrase longer than the rest of the text"
        );
    }

    #[test]
    fn empty_keywords_never_match() {
        let m = muted(&["", "  ", "#"]);
        assert!(m.is_empty());
        assert!(!m.matches("anything # at all"));
        assert!(!m.matches_tokens(&TweetTokens::new("anything # at all")));
    }
}
