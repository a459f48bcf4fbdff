//! Typed errors of the artifact readers. Every message names the file and the
//! array or field at fault, gives the value found and what was expected, in
//! lowercase without a trailing period.

use std::path::PathBuf;

use crate::hash_embed::EntityKind;

/// The JSON prefix of an entity kind in `hash_params` and `*_vocab_size`
/// (`run_pipeline.py` calls posts "items").
pub(crate) fn kind_prefix(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::User => "user",
        EntityKind::Post => "item",
        EntityKind::Author => "author",
    }
}

/// A `hash_params` object or a vocabulary size that the published hash cannot
/// use. Carries no path: [`ArtifactError::HashParams`] adds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashParamsError {
    /// Scales and biases do not pair up one to one.
    #[error(
        "hash_params.{p}_hash_scales has {scales} entries but hash_params.{p}_biases has {biases}, expected equal counts",
        p = kind_prefix(*kind)
    )]
    CountMismatch {
        /// The entity kind.
        kind: EntityKind,
        /// Entries in `*_hash_scales`.
        scales: usize,
        /// Entries in `*_biases`.
        biases: usize,
    },
    /// No hash function at all.
    #[error(
        "hash_params.{p}_hash_scales is empty, expected at least one hash function",
        p = kind_prefix(*kind)
    )]
    NoHashFunctions {
        /// The entity kind.
        kind: EntityKind,
    },
    /// The modulus is zero or negative.
    #[error("hash_params.{p}_modulus is {modulus}, expected > 0", p = kind_prefix(*kind))]
    NonPositiveModulus {
        /// The entity kind.
        kind: EntityKind,
        /// The value found.
        modulus: i64,
    },
    /// A vocabulary below 2 has no row for a non-zero bucket.
    #[error("{p}_vocab_size is {vocab}, expected >= 2", p = kind_prefix(*kind))]
    VocabTooSmall {
        /// The entity kind.
        kind: EntityKind,
        /// The value found.
        vocab: usize,
    },
    /// The unified table would have more rows than an `i64` row index holds.
    #[error(
        "{p}_vocab_size is {vocab}, too large: 65 + user + item + author rows must fit in i64",
        p = kind_prefix(*kind)
    )]
    VocabTooLarge {
        /// The entity kind.
        kind: EntityKind,
        /// The value found.
        vocab: usize,
    },
}

/// Everything that can go wrong reading a released artifact directory.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// A file could not be opened or read.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error (shown in the message, so not a `source`).
        cause: std::io::Error,
    },
    /// A `.npz` file is not a readable zip archive (or one member is not).
    #[error("{}: not a readable npz (zip) archive: {cause}", path.display())]
    Zip {
        /// The file.
        path: PathBuf,
        /// The zip reader's error.
        cause: zip::result::ZipError,
    },
    /// The archive has no member `<name>.npy`.
    #[error("{}: no array '{name}' (arrays: {})", path.display(), available.join(", "))]
    MissingArray {
        /// The file.
        path: PathBuf,
        /// The array asked for.
        name: String,
        /// The arrays the archive does hold.
        available: Vec<String>,
    },
    /// An `.npy` member is malformed (bad header, truncated data, a string
    /// that is not Unicode).
    #[error("{}: array '{name}': {cause}", path.display())]
    Npy {
        /// The file.
        path: PathBuf,
        /// The array.
        name: String,
        /// The parser's error.
        cause: std::io::Error,
    },
    /// An array has a dtype the reader does not accept.
    #[error("{}: array '{name}' has dtype '{found}', expected {expected}", path.display())]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The array.
        name: String,
        /// The numpy type string found (`<f8`, `|V2`, ...).
        found: String,
        /// The accepted dtypes, in words.
        expected: &'static str,
    },
    /// A multi-dimensional array is stored in Fortran (column-major) order.
    #[error(
        "{}: array '{name}' is stored in fortran order, expected c order (numpy's default)",
        path.display()
    )]
    FortranOrder {
        /// The file.
        path: PathBuf,
        /// The array.
        name: String,
    },
    /// The header declares more data than the archive member holds.
    #[error(
        "{}: array '{name}' declares {declared_bytes} bytes of data but its member holds {member_bytes}",
        path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The array.
        name: String,
        /// Bytes the `.npy` header's shape and dtype call for.
        declared_bytes: u128,
        /// Uncompressed size of the `.npy` member.
        member_bytes: u64,
    },
    /// An array has the wrong shape.
    #[error("{}: array '{name}' has shape {found:?}, expected {expected}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// The array.
        name: String,
        /// The shape found.
        found: Vec<usize>,
        /// The shape expected, in words (`[N, 16]`, `1-d`).
        expected: String,
    },
    /// A float array holds NaN or an infinity.
    #[error("{}: array '{name}' element {index} is {value}, expected a finite value", path.display())]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The array.
        name: String,
        /// Flat (row-major) index of the first bad element.
        index: usize,
        /// The value found.
        value: f32,
    },
    /// A JSON file does not parse into the expected structure (serde's message
    /// names the missing or mistyped field and the line).
    #[error("{}: {cause}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        cause: serde_json::Error,
    },
    /// A field parses but holds a value the pipeline cannot use.
    #[error("{}: {field} is {value}, expected {expected}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field (`num_item_hashes`, `history[3].actions["x"]`).
        field: String,
        /// The value found.
        value: String,
        /// What was expected.
        expected: String,
    },
    /// `hash_params` or a vocabulary size is unusable.
    #[error("{}: {cause}", path.display())]
    HashParams {
        /// The `config.json`.
        path: PathBuf,
        /// What is wrong, naming the field.
        cause: HashParamsError,
    },
}

impl ArtifactError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            cause,
        }
    }

    /// An [`ArtifactError::Invalid`] for `field` of `path`.
    pub fn invalid(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        value: impl ToString,
        expected: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            path: path.into(),
            field: field.into(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}

/// Result alias of the artifact readers.
pub type Result<T> = std::result::Result<T, ArtifactError>;
