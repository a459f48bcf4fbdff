//! A user's engagement sequence (`example_sequence.json`): the user id and
//! the history items `{post_id, author_id, actions}` in file order, where
//! `actions` maps a proto action index (a JSON string key) to a number.
//!
//! Ids may be written as uint64 or int64; both become i64 by two's
//! complement, as `run_pipeline.py` reinterprets them. Action keys must be
//! non-negative integers; values may be ints or floats.
//! [`HistoryItem::action_row`] applies the script's rule (step 3): index
//! `>= num_actions` is ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::error::{ArtifactError, Result};

/// One engaged post, as read from the file.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryItem {
    /// The post id (two's-complement i64).
    pub post_id: i64,
    /// Its author's id (two's-complement i64).
    pub author_id: i64,
    /// `(action index, value)`, sorted by index, no duplicates.
    pub actions: Vec<(usize, f64)>,
}

impl HistoryItem {
    /// The model's action row: `value as f32` at each index below
    /// `num_actions`, 0 elsewhere; higher indices are dropped, as the script
    /// does.
    pub fn action_row(&self, num_actions: usize) -> Vec<f32> {
        let mut row = vec![0.0f32; num_actions];
        for &(index, value) in &self.actions {
            if let Some(slot) = row.get_mut(index) {
                *slot = value as f32;
            }
        }
        row
    }
}

/// The sequence file: a user and their history, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    /// The viewer (two's-complement i64).
    pub user_id: i64,
    /// Every history item of the file (the script keeps the first
    /// `history_seq_len`).
    pub history: Vec<HistoryItem>,
}

/// The file's JSON shape before the action keys are checked.
#[derive(Deserialize)]
struct RawSequence {
    #[serde(deserialize_with = "id_i64")]
    user_id: i64,
    history: Vec<RawItem>,
}

#[derive(Deserialize)]
struct RawItem {
    #[serde(deserialize_with = "id_i64")]
    post_id: i64,
    #[serde(deserialize_with = "id_i64")]
    author_id: i64,
    #[serde(default)]
    actions: BTreeMap<String, f64>,
}

impl Sequence {
    /// Reads and checks `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ArtifactError::io(path, e))?;
        Self::from_json(&text, path)
    }

    /// Parses and checks `text`; `path` only names the source in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let raw: RawSequence = serde_json::from_str(text).map_err(|cause| ArtifactError::Json {
            path: path.to_path_buf(),
            cause,
        })?;
        let mut history = Vec::with_capacity(raw.history.len());
        for (i, item) in raw.history.into_iter().enumerate() {
            let mut actions = Vec::with_capacity(item.actions.len());
            for (key, value) in item.actions {
                let index: usize = key.parse().map_err(|_| {
                    ArtifactError::invalid(
                        path,
                        format!("history[{i}].actions key"),
                        format!("{key:?}"),
                        "a non-negative integer action index",
                    )
                })?;
                // The model's action rows are float32.
                if !(value as f32).is_finite() {
                    let field = format!("history[{i}].actions[{key:?}]");
                    return Err(ArtifactError::invalid(
                        path,
                        field,
                        value,
                        "a finite float32",
                    ));
                }
                actions.push((index, value));
            }
            // Keys were sorted as strings ("11" < "5"); "5" and "05" collide.
            actions.sort_by_key(|&(index, _)| index);
            if let Some(w) = actions.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(ArtifactError::invalid(
                    path,
                    format!("history[{i}].actions"),
                    format!("index {} given twice", w[0].0),
                    "each action index once",
                ));
            }
            history.push(HistoryItem {
                post_id: item.post_id,
                author_id: item.author_id,
                actions,
            });
        }
        Ok(Self {
            user_id: raw.user_id,
            history,
        })
    }
}

/// An integer id written as int64 or uint64 → i64 (two's complement).
fn id_i64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
    struct IdVisitor;
    impl Visitor<'_> for IdVisitor {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer id in the int64 or uint64 range")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<i64, E> {
            Ok(v.cast_signed())
        }
    }
    d.deserialize_i64(IdVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/phoenix-v2/v2_artifacts/example_sequence.json")
    }

    fn parse(text: &str) -> Result<Sequence> {
        Sequence::from_json(text, Path::new("seq.json"))
    }

    #[test]
    fn example_sequence_has_12_items_and_the_readme_user() -> Result<()> {
        let s = Sequence::open(fixture())?;
        assert_eq!(s.user_id, 1_907_834_201_938_571_264);
        assert_eq!(s.history.len(), 12);
        // Item 3 has no action; item 1 has a float value ("5": 1.0).
        assert!(s.history[3].actions.is_empty());
        assert_eq!(s.history[1].actions, vec![(1, 1.0), (5, 1.0), (11, 1.0)]);
        Ok(())
    }

    #[test]
    fn action_rows_equal_expected_json_nonzeros() -> Result<()> {
        let s = Sequence::open(fixture())?;
        let text = std::fs::read_to_string(fixture().with_file_name("expected.json"))
            .expect("expected.json");
        let expected: serde_json::Value = serde_json::from_str(&text).expect("json");
        let want: Vec<(usize, usize, f64)> =
            serde_json::from_value(expected["history_actions_nonzero"].clone()).expect("triples");
        let mut got = Vec::new();
        for (slot, item) in s.history.iter().enumerate() {
            for (index, &v) in item.action_row(19).iter().enumerate() {
                if v != 0.0 {
                    got.push((slot, index, f64::from(v)));
                }
            }
        }
        assert_eq!(got, want);
        Ok(())
    }

    #[test]
    fn uint64_ids_above_i64_max_wrap_to_negative() -> Result<()> {
        let s = parse(
            r#"{"user_id": 18446744073709551615,
                "history": [{"post_id": 9223372036854775808, "author_id": -5, "actions": {}}]}"#,
        )?;
        assert_eq!(s.user_id, -1);
        assert_eq!(s.history[0].post_id, i64::MIN);
        assert_eq!(s.history[0].author_id, -5);
        Ok(())
    }

    #[test]
    fn indices_at_or_above_num_actions_are_ignored() -> Result<()> {
        let s = parse(
            r#"{"user_id": 1, "history": [{"post_id": 2, "author_id": 3,
                "actions": {"0": 2, "3": 0.5, "19": 1, "400": 1}}]}"#,
        )?;
        assert_eq!(s.history[0].action_row(4), vec![2.0, 0.0, 0.0, 0.5]);
        Ok(())
    }

    #[test]
    fn non_integer_action_key_is_named() {
        let msg = parse(
            r#"{"user_id": 1, "history": [{"post_id": 2, "author_id": 3, "actions": {}},
                {"post_id": 2, "author_id": 3, "actions": {"fav": 1}}]}"#,
        )
        .expect_err("key fav")
        .to_string();
        assert!(
            msg.contains("seq.json: history[1].actions key is \"fav\""),
            "{msg}"
        );
    }

    #[test]
    fn action_value_beyond_float32_is_refused() {
        let msg = parse(
            r#"{"user_id": 1, "history": [{"post_id": 2, "author_id": 3,
                "actions": {"1": 1e39}}]}"#,
        )
        .expect_err("overflows f32")
        .to_string();
        assert!(
            msg.contains("history[0].actions[\"1\"] is 1000000"),
            "{msg}"
        );
    }

    #[test]
    fn duplicate_action_index_is_refused() {
        let msg = parse(
            r#"{"user_id": 1, "history": [{"post_id": 2, "author_id": 3,
                "actions": {"5": 1, "05": 1}}]}"#,
        )
        .expect_err("5 twice")
        .to_string();
        assert!(
            msg.contains("history[0].actions") && msg.contains("index 5"),
            "{msg}"
        );
    }

    #[test]
    fn float_or_missing_id_is_a_json_error_naming_the_field() {
        let msg = parse(r#"{"user_id": 1.5, "history": []}"#)
            .expect_err("float id")
            .to_string();
        assert!(
            msg.contains("seq.json") && msg.contains("integer id"),
            "{msg}"
        );
        let msg = parse(r#"{"history": []}"#)
            .expect_err("no user")
            .to_string();
        assert!(msg.contains("user_id"), "{msg}");
    }
}
