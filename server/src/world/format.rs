//! The world file: JSON Lines, version 1. Line 1 is a header; every other
//! line is one record, tagged by `"type"`. A record may only refer to users
//! and posts defined on earlier lines (the generator writes users, then
//! relations, then posts oldest first, then engagements, labels and
//! impressions). Unknown fields and types are errors; every error names the
//! file, the line and, where it can, the field.
//!
//! ```text
//! {"type":"header","format":"foryou-world","version":1,"now_ms":1764000000000,"seed":42}
//! {"type":"user","id":1,"screen_name":"ada"}
//! {"type":"follow","user":1,"target":2}            # also block, mute, subscription
//! {"type":"muted_keyword","user":1,"keyword":"crypto"}
//! {"type":"post","id":1990…,"author":2,"text":"…","in_reply_to":null,"conversation_id":null,
//!  "retweet_of":null,"video_duration_ms":null,"subscriber_only":false}   # created_ms optional
//! {"type":"engagement","user":1,"post":1990…,"actions":["favorite","reply"],"at_ms":…,"surface":0}
//! {"type":"label","post":1990…,"reason":"spam","action":"drop","scope":"all"}
//! {"type":"seen","user":1,"post":1990…}
//! ```
//! Post ids are snowflakes: a post's `created_ms` defaults to its id's time.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::model::{Engagement, Label, LabelAction, LabelScope, Post, World};
use crate::pipeline::home_mixer::Action;
use crate::pipeline::util::snowflake;

/// The `format` value of the header.
pub const FORMAT: &str = "foryou-world";
/// The version this build reads and writes.
pub const VERSION: u32 = 1;

/// A world file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WorldFileError {
    /// The file cannot be opened, read or written.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        cause: std::io::Error,
    },
    /// A line is not a valid record.
    #[error("{path}:{line}: {field}{message}")]
    Record {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// "field `x`: " when a field is to blame, else empty.
        field: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderRec {
    format: String,
    version: u32,
    now_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRec {
    id: i64,
    screen_name: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EdgeRec {
    user: i64,
    target: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeywordRec {
    user: i64,
    keyword: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostRec {
    id: i64,
    author: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_ms: Option<i64>,
    #[serde(default)]
    text: String,
    #[serde(default)]
    in_reply_to: Option<i64>,
    #[serde(default)]
    conversation_id: Option<i64>,
    #[serde(default)]
    retweet_of: Option<i64>,
    #[serde(default)]
    video_duration_ms: Option<i32>,
    #[serde(default)]
    subscriber_only: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EngagementRec {
    user: i64,
    post: i64,
    actions: Vec<String>,
    at_ms: i64,
    #[serde(default)]
    surface: u32,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelRec {
    post: i64,
    reason: String,
    action: String,
    #[serde(default = "default_scope")]
    scope: String,
}

fn default_scope() -> String {
    "all".into()
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeenRec {
    user: i64,
    post: i64,
}

/// Where a record came from, for error messages.
struct At<'a> {
    path: &'a Path,
    line: usize,
}

impl At<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> WorldFileError {
        WorldFileError::Record {
            path: self.path.to_owned(),
            line: self.line,
            field: if field.is_empty() {
                String::new()
            } else {
                format!("field `{field}`: ")
            },
            message: message.into(),
        }
    }

    /// Deserializes a record body, naming the field a type error is in.
    fn parse<T: DeserializeOwned>(&self, v: serde_json::Value) -> Result<T, WorldFileError> {
        serde_path_to_error::deserialize(v).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "" } else { path.as_str() };
            self.err(field, e.into_inner().to_string())
        })
    }
}

/// Earliest `now_ms` a world may have: the snowflake epoch (post ids
/// encode their creation time from it; an earlier clock has no valid ids).
pub const MIN_NOW_MS: i64 = snowflake::TWEPOCH_MS;
/// Latest `now_ms`: the last millisecond a 41-bit snowflake timestamp can
/// hold. Later clocks (or ones near ±2^63) overflow every age computation.
pub const MAX_NOW_MS: i64 = snowflake::TWEPOCH_MS + (1 << 41) - 1;

/// What the server that will use a world can take, checked while reading
/// so that an error names the line (serving would otherwise fail on it
/// later, one request at a time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorldRules {
    /// The ranker's product-surface vocabulary: every engagement's
    /// `surface` must be below it. `None`: not checked (the ranker is
    /// remote and checks each request).
    pub product_surfaces: Option<u32>,
}

/// Reads a world file.
pub fn read_world(path: &Path) -> Result<World, WorldFileError> {
    read_world_for(path, WorldRules::default())
}

/// Reads a world file and checks it against what its server can take.
pub fn read_world_for(path: &Path, rules: WorldRules) -> Result<World, WorldFileError> {
    let file = std::fs::File::open(path).map_err(|cause| WorldFileError::Io {
        path: path.to_owned(),
        cause,
    })?;
    read_world_from(BufReader::new(file), path, rules)
}

/// Reads a world from `input`; `path` names it in errors.
pub fn read_world_from(
    input: impl BufRead,
    path: &Path,
    rules: WorldRules,
) -> Result<World, WorldFileError> {
    let io = |cause| WorldFileError::Io {
        path: path.to_owned(),
        cause,
    };
    let mut world = World::default();
    let mut saw_header = false;
    for (i, line) in input.lines().enumerate() {
        let at = At { path, line: i + 1 };
        let line = line.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => at.err("", "not UTF-8 text"),
            _ => io(e),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let mut value: serde_json::Value =
            serde_json::from_str(&line).map_err(|e| at.err("", format!("not JSON: {e}")))?;
        let Some(obj) = value.as_object_mut() else {
            return Err(at.err("", "expected a JSON object"));
        };
        let kind = match obj.remove("type") {
            Some(serde_json::Value::String(s)) => s,
            Some(_) => return Err(at.err("type", "expected a string")),
            None => return Err(at.err("type", "missing")),
        };
        if !saw_header {
            if kind != "header" {
                return Err(at.err("type", "the first record must be the header"));
            }
            let h: HeaderRec = at.parse(value)?;
            if h.format != FORMAT {
                return Err(at.err("format", format!("expected {FORMAT:?}, got {:?}", h.format)));
            }
            if h.version != VERSION {
                return Err(at.err(
                    "version",
                    format!(
                        "this build reads version {VERSION}, the file is {}",
                        h.version
                    ),
                ));
            }
            if !(MIN_NOW_MS..=MAX_NOW_MS).contains(&h.now_ms) {
                return Err(at.err(
                    "now_ms",
                    format!(
                        "{} is outside the snowflake era [{MIN_NOW_MS}, {MAX_NOW_MS}] (2010-11-04 to 2080-07-10, unix ms)",
                        h.now_ms
                    ),
                ));
            }
            world.now_ms = h.now_ms;
            world.seed = h.seed;
            saw_header = true;
            continue;
        }
        apply_record(&mut world, &at, &kind, value, rules)?;
    }
    if !saw_header {
        return Err(At { path, line: 1 }.err("", "empty file: expected a header record"));
    }
    Ok(world)
}

fn apply_record(
    w: &mut World,
    at: &At<'_>,
    kind: &str,
    value: serde_json::Value,
    rules: WorldRules,
) -> Result<(), WorldFileError> {
    let user = |w: &World, field: &str, id: i64| {
        if w.users.contains_key(&id) {
            Ok(id)
        } else {
            Err(at.err(
                field,
                format!("unknown user {id} (define it on an earlier line)"),
            ))
        }
    };
    let post = |w: &World, field: &str, id: i64| {
        if w.posts.contains_key(&id) {
            Ok(id)
        } else {
            Err(at.err(
                field,
                format!("unknown post {id} (define it on an earlier line)"),
            ))
        }
    };
    match kind {
        "header" => return Err(at.err("type", "a second header")),
        "user" => {
            let r: UserRec = at.parse(value)?;
            if r.id <= 0 {
                return Err(at.err("id", format!("user ids are positive, got {}", r.id)));
            }
            if w.users.contains_key(&r.id) {
                return Err(at.err("id", format!("user {} defined twice", r.id)));
            }
            w.add_user(r.id, r.screen_name);
        }
        "follow" | "block" | "mute" | "subscription" => {
            let r: EdgeRec = at.parse(value)?;
            let (u, t) = (user(w, "user", r.user)?, user(w, "target", r.target)?);
            match kind {
                "follow" => w.add_follow(u, t),
                "block" => w.blocks.entry(u).or_default().push(t),
                "mute" => w.mutes.entry(u).or_default().push(t),
                _ => w.subscriptions.entry(u).or_default().push(t),
            }
        }
        "muted_keyword" => {
            let r: KeywordRec = at.parse(value)?;
            let u = user(w, "user", r.user)?;
            w.muted_keywords.entry(u).or_default().push(r.keyword);
        }
        "post" => {
            let r: PostRec = at.parse(value)?;
            if r.id <= 0 {
                return Err(at.err("id", format!("post ids are positive, got {}", r.id)));
            }
            if w.posts.contains_key(&r.id) {
                return Err(at.err("id", format!("post {} defined twice", r.id)));
            }
            let author = user(w, "author", r.author)?;
            if let Some(p) = r.in_reply_to {
                post(w, "in_reply_to", p)?;
            }
            if let Some(p) = r.retweet_of {
                post(w, "retweet_of", p)?;
            }
            if r.in_reply_to.is_some() && r.retweet_of.is_some() {
                return Err(at.err("retweet_of", "a post is a reply or a retweet, not both"));
            }
            if r.video_duration_ms.is_some_and(|d| d < 0) {
                return Err(at.err("video_duration_ms", "must not be negative"));
            }
            let created_ms = match r.created_ms {
                Some(t) => t,
                None => {
                    snowflake::created_ms(r.id).ok_or_else(|| at.err("id", "not a snowflake"))?
                }
            };
            w.add_post(Post {
                id: r.id,
                author,
                created_ms,
                text: r.text.into(),
                in_reply_to: r.in_reply_to,
                conversation_id: r.conversation_id,
                retweet_of: r.retweet_of,
                video_duration_ms: r.video_duration_ms,
                subscriber_only: r.subscriber_only,
            });
        }
        "engagement" => {
            let r: EngagementRec = at.parse(value)?;
            let u = user(w, "user", r.user)?;
            let p = post(w, "post", r.post)?;
            if let Some(v) = rules.product_surfaces
                && r.surface >= v
            {
                return Err(at.err(
                    "surface",
                    format!(
                        "{} is outside the ranker's product-surface vocabulary (0 to {})",
                        r.surface,
                        v.saturating_sub(1)
                    ),
                ));
            }
            let mut actions = 0u32;
            for name in &r.actions {
                let a = Action::ALL
                    .iter()
                    .find(|a| a.name() == name)
                    .ok_or_else(|| at.err("actions", format!("unknown action {name:?}")))?;
                actions |= 1 << (*a as u32);
            }
            w.add_engagement(
                u,
                Engagement {
                    post: p,
                    actions,
                    at_ms: r.at_ms,
                    surface: r.surface,
                },
            );
        }
        "label" => {
            let r: LabelRec = at.parse(value)?;
            let p = post(w, "post", r.post)?;
            let action = match r.action.as_str() {
                "drop" => LabelAction::Drop,
                "interstitial" => LabelAction::Interstitial,
                "label" => LabelAction::Label,
                other => {
                    return Err(at.err(
                        "action",
                        format!("expected drop, interstitial or label, got {other:?}"),
                    ));
                }
            };
            let scope = match r.scope.as_str() {
                "all" => LabelScope::All,
                "recommendations" => LabelScope::Recommendations,
                other => {
                    return Err(at.err(
                        "scope",
                        format!("expected all or recommendations, got {other:?}"),
                    ));
                }
            };
            w.labels.insert(
                p,
                Label {
                    reason: r.reason,
                    action,
                    scope,
                },
            );
        }
        "seen" => {
            let r: SeenRec = at.parse(value)?;
            let u = user(w, "user", r.user)?;
            let p = post(w, "post", r.post)?;
            w.seen.entry(u).or_default().push(p);
        }
        other => return Err(at.err("type", format!("unknown record type {other:?}"))),
    }
    Ok(())
}

/// One line: `{"type":KIND,...fields}`.
fn line<T: Serialize>(out: &mut impl Write, kind: &str, rec: &T) -> std::io::Result<()> {
    let body = serde_json::to_string(rec).map_err(std::io::Error::other)?;
    let rest = body.strip_prefix('{').unwrap_or(&body);
    writeln!(out, "{{\"type\":\"{kind}\",{rest}")
}

/// Writes `world` in the order [`read_world`] needs.
pub fn write_world(world: &World, path: &Path) -> Result<(), WorldFileError> {
    let io = |cause| WorldFileError::Io {
        path: path.to_owned(),
        cause,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut out = BufWriter::new(file);
    write_records(world, &mut out).map_err(io)?;
    out.flush().map_err(io)
}

fn sorted<T: Clone>(m: &std::collections::HashMap<i64, Vec<T>>) -> Vec<(i64, Vec<T>)> {
    let mut v: Vec<(i64, Vec<T>)> = m.iter().map(|(k, v)| (*k, v.clone())).collect();
    v.sort_by_key(|(k, _)| *k);
    v
}

fn write_records(w: &World, out: &mut impl Write) -> std::io::Result<()> {
    let header = HeaderRec {
        format: FORMAT.into(),
        version: VERSION,
        now_ms: w.now_ms,
        seed: w.seed,
    };
    line(out, "header", &header)?;
    for u in w.users.values() {
        let rec = UserRec {
            id: u.id,
            screen_name: u.screen_name.clone(),
        };
        line(out, "user", &rec)?;
    }
    for (kind, map) in [
        ("follow", &w.follows),
        ("block", &w.blocks),
        ("mute", &w.mutes),
        ("subscription", &w.subscriptions),
    ] {
        for (user, targets) in sorted(map) {
            for target in targets {
                line(out, kind, &EdgeRec { user, target })?;
            }
        }
    }
    for (user, words) in sorted(&w.muted_keywords) {
        for keyword in words {
            line(out, "muted_keyword", &KeywordRec { user, keyword })?;
        }
    }
    // Parents and sources are older than their replies and retweets.
    let mut posts: Vec<&Post> = w.posts.values().collect();
    posts.sort_by_key(|p| (p.created_ms, p.id));
    for p in posts {
        let created_ms =
            (snowflake::created_ms(p.id) != Some(p.created_ms)).then_some(p.created_ms);
        let rec = PostRec {
            id: p.id,
            author: p.author,
            created_ms,
            text: p.text.to_string(),
            in_reply_to: p.in_reply_to,
            conversation_id: p.conversation_id,
            retweet_of: p.retweet_of,
            video_duration_ms: p.video_duration_ms,
            subscriber_only: p.subscriber_only,
        };
        line(out, "post", &rec)?;
    }
    for (user, list) in sorted(&w.engagements) {
        for e in list {
            let actions = Action::ALL
                .iter()
                .filter(|a| e.actions >> (**a as u32) & 1 == 1)
                .map(|a| a.name().to_owned())
                .collect();
            let rec = EngagementRec {
                user,
                post: e.post,
                actions,
                at_ms: e.at_ms,
                surface: e.surface,
            };
            line(out, "engagement", &rec)?;
        }
    }
    let mut labels: Vec<(&i64, &Label)> = w.labels.iter().collect();
    labels.sort_by_key(|(id, _)| **id);
    for (post, l) in labels {
        let rec = LabelRec {
            post: *post,
            reason: l.reason.clone(),
            action: l.action.as_str().into(),
            scope: match l.scope {
                LabelScope::All => "all",
                LabelScope::Recommendations => "recommendations",
            }
            .into(),
        };
        line(out, "label", &rec)?;
    }
    for (user, posts) in sorted(&w.seen) {
        for post in posts {
            line(out, "seen", &SeenRec { user, post })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{WorldSpec, generate};

    fn write_lines(lines: &[&str]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.jsonl");
        std::fs::write(&path, lines.join("\n")).expect("write");
        (dir, path)
    }

    const HEADER: &str =
        r#"{"type":"header","format":"foryou-world","version":1,"now_ms":1800000000000}"#;

    #[test]
    fn a_generated_world_round_trips_through_the_file() {
        let spec = WorldSpec {
            users: 60,
            ..WorldSpec::demo(7, 1_800_000_000_000)
        };
        let w = generate(&spec);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.jsonl");
        write_world(&w, &path).expect("write");
        let r = read_world(&path).expect("read");
        assert_eq!(r.now_ms, w.now_ms);
        assert_eq!(r.seed, Some(7));
        assert_eq!(r.users, w.users);
        assert_eq!(r.posts, w.posts);
        assert_eq!(r.labels, w.labels);
        for (a, b) in [
            (&r.follows, &w.follows),
            (&r.blocks, &w.blocks),
            (&r.mutes, &w.mutes),
            (&r.subscriptions, &w.subscriptions),
            (&r.seen, &w.seen),
        ] {
            assert_eq!(a, b);
        }
        assert_eq!(r.muted_keywords, w.muted_keywords);
        assert_eq!(r.engagements, w.engagements);
        assert_eq!(r.followers_count(1), w.followers_count(1));
    }

    fn error_of(lines: &[&str]) -> String {
        let (_d, path) = write_lines(lines);
        read_world(&path).expect_err("invalid").to_string()
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let user = r#"{"type":"user","id":1,"screen_name":"ada"}"#;
        let cases: [(&[&str], &str); 9] = [
            (
                &[user],
                ":1: field `type`: the first record must be the header",
            ),
            (
                &[HEADER, r#"{"type":"user","id":"x","screen_name":"a"}"#],
                ":2: field `id`: invalid type",
            ),
            (
                &[HEADER, user, r#"{"type":"follow","user":1,"target":9}"#],
                ":3: field `target`: unknown user 9",
            ),
            (
                &[
                    HEADER,
                    user,
                    r#"{"type":"post","id":5,"author":1,"colour":"red"}"#,
                ],
                ":3: field `colour`: unknown field",
            ),
            (
                &[
                    HEADER,
                    user,
                    r#"{"type":"post","id":4194304,"author":1,"retweet_of":77}"#,
                ],
                ":3: field `retweet_of`: unknown post 77",
            ),
            (
                &[HEADER, r#"{"type":"spaceship"}"#],
                ":2: field `type`: unknown record type \"spaceship\"",
            ),
            (&[HEADER, "not json"], ":2: not JSON"),
            (
                &[r#"{"type":"header","format":"foryou-world","version":9,"now_ms":0}"#],
                ":1: field `version`: this build reads version 1",
            ),
            (
                &[
                    HEADER,
                    user,
                    r#"{"type":"post","id":4194304,"author":1}"#,
                    r#"{"type":"engagement","user":1,"post":4194304,"actions":["like"],"at_ms":1}"#,
                ],
                ":4: field `actions`: unknown action \"like\"",
            ),
        ];
        for (lines, want) in cases {
            let got = error_of(lines);
            assert!(got.contains(want), "{got:?} should contain {want:?}");
            assert!(got.contains("w.jsonl"), "{got:?} names the file");
        }
    }

    #[test]
    fn a_clock_outside_the_snowflake_era_and_non_utf8_lines_are_errors_naming_the_line() {
        for now in [0, i64::MAX, i64::MIN, MAX_NOW_MS + 1] {
            let header = format!(
                r#"{{"type":"header","format":"foryou-world","version":1,"now_ms":{now}}}"#
            );
            let got = error_of(&[&header]);
            assert!(got.contains(":1: field `now_ms`"), "{got}");
        }
        let edge = format!(
            r#"{{"type":"header","format":"foryou-world","version":1,"now_ms":{MAX_NOW_MS}}}"#
        );
        let (_d, path) = write_lines(&[&edge]);
        assert!(
            read_world(&path).is_ok(),
            "the last snowflake millisecond is valid"
        );
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("w.jsonl");
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(b"\n{\"type\":\"user\",\"id\":1,\"screen_name\":\"\xff\"}\n");
        std::fs::write(&path, bytes).expect("write");
        let got = read_world(&path).expect_err("not UTF-8").to_string();
        assert!(got.contains("w.jsonl:2: not UTF-8 text"), "{got}");
    }

    #[test]
    fn a_surface_outside_the_rankers_vocabulary_is_an_error_naming_the_line() {
        let engagement = |surface: u32| {
            format!(
                r#"{{"type":"engagement","user":1,"post":4194304,"actions":["favorite"],"at_ms":1,"surface":{surface}}}"#
            )
        };
        let lines = |surface| {
            vec![
                HEADER.to_owned(),
                r#"{"type":"user","id":1,"screen_name":"a"}"#.to_owned(),
                r#"{"type":"post","id":4194304,"author":1}"#.to_owned(),
                engagement(surface),
            ]
        };
        let rules = WorldRules {
            product_surfaces: Some(4),
        };
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("w.jsonl");
        std::fs::write(&path, lines(3).join("\n")).expect("write");
        let w = read_world_for(&path, rules).expect("surface 3 < 4");
        assert_eq!(w.engagements[&1][0].surface, 3);
        std::fs::write(&path, lines(4).join("\n")).expect("write");
        let got = read_world_for(&path, rules)
            .expect_err("4 >= 4")
            .to_string();
        assert!(
            got.contains("w.jsonl:4: field `surface`: 4 is outside the ranker's product-surface vocabulary (0 to 3)"),
            "{got}"
        );
        assert!(read_world(&path).is_ok(), "unchecked without rules");
    }

    #[test]
    fn a_post_without_created_ms_takes_its_snowflake_time() {
        let id = snowflake::id_at(1_800_000_000_000) + 3;
        let post = format!(r#"{{"type":"post","id":{id},"author":1,"text":"hi"}}"#);
        let (_d, path) =
            write_lines(&[HEADER, r#"{"type":"user","id":1,"screen_name":"a"}"#, &post]);
        let w = read_world(&path).expect("valid");
        assert_eq!(w.posts[&id].created_ms, 1_800_000_000_000);
    }
}
