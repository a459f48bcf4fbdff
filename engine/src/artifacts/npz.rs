//! `.npz` archives as numpy's `savez` / `savez_compressed` write them: a zip
//! (stored or DEFLATE) of one `<name>.npy` member per array. The zip side is
//! the `zip` crate, the `.npy` side `npyz`; this file only picks the dtype
//! and names the file and array in every error.
//!
//! Limits: C-order arrays only (a Fortran-order array of 2+ dimensions is
//! refused, not transposed); no pickled object arrays; `bfloat16` cannot be
//! told apart from other 2-byte records (numpy stores it as `|V2`), so it is
//! refused with its type string rather than guessed.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use npyz::{DType, NpyFile, Order, TypeChar};

use super::error::{ArtifactError, Result};

/// A dense array read from an `.npz`: row-major `data` of `shape`
/// (`shape` is empty for a 0-d scalar, which has one element).
#[derive(Debug, Clone, PartialEq)]
pub struct Array<T> {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` elements, row-major.
    pub data: Vec<T>,
}

impl<T> Array<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the array has no element (a 0-d array has one).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// An open `.npz` archive; arrays are read on demand by name.
pub struct NpzFile {
    path: PathBuf,
    zip: zip::ZipArchive<BufReader<File>>,
    names: Vec<String>,
}

impl std::fmt::Debug for NpzFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NpzFile")
            .field("path", &self.path)
            .field("names", &self.names)
            .finish()
    }
}

/// The element type a member holds, once its dtype has been accepted.
enum Stored {
    F32,
    F16,
    I64,
    I32,
    U64,
    Unicode,
}

impl NpzFile {
    /// Opens `path` and lists its arrays (members ending in `.npy`, in
    /// archive order, without the suffix, as `np.load(...).files` does).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| ArtifactError::io(&path, e))?;
        let zip =
            zip::ZipArchive::new(BufReader::new(file)).map_err(|cause| ArtifactError::Zip {
                path: path.clone(),
                cause,
            })?;
        let mut names = Vec::with_capacity(zip.len());
        for member in zip.file_names() {
            let member = member.map_err(|cause| ArtifactError::Zip {
                path: path.clone(),
                cause,
            })?;
            if let Some(name) = npyz::npz::array_name_from_file_name(&member) {
                names.push(name.to_string());
            }
        }
        Ok(Self { path, zip, names })
    }

    /// The file this archive was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The array names, in archive order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether the archive holds array `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// The numpy type string (`<f4`, `<U28`, ...) and shape of array `name`,
    /// read from its header only.
    pub fn describe(&mut self, name: &str) -> Result<(String, Vec<usize>)> {
        let (path, npy, _) = self.member(name)?;
        let shape = shape_of(&path, name, npy.shape())?;
        Ok((type_string(&npy.dtype()), shape))
    }

    /// Reads array `name` as f32: float32 as is, float16 widened exactly.
    pub fn f32(&mut self, name: &str) -> Result<Array<f32>> {
        const EXPECTED: &str = "float32 or float16";
        let (path, npy, stored) = self.checked_member(name, EXPECTED)?;
        let (shape, data) = match stored {
            Stored::F32 => read_all::<f32>(&path, name, npy)?,
            Stored::F16 => {
                let (shape, data) = read_all::<npyz::half::f16>(&path, name, npy)?;
                (shape, data.into_iter().map(f32::from).collect())
            }
            _ => return Err(dtype_error(path, name, &npy, EXPECTED)),
        };
        Ok(Array { shape, data })
    }

    /// Reads array `name` as i64: int64 as is, int32 widened, uint64
    /// reinterpreted as two's complement (ids above `i64::MAX` become
    /// negative, as `run_pipeline.py` reinterprets uint64 ids).
    pub fn i64(&mut self, name: &str) -> Result<Array<i64>> {
        const EXPECTED: &str = "int64, int32 or uint64";
        let (path, npy, stored) = self.checked_member(name, EXPECTED)?;
        let (shape, data) = match stored {
            Stored::I64 => read_all::<i64>(&path, name, npy)?,
            Stored::I32 => {
                let (shape, data) = read_all::<i32>(&path, name, npy)?;
                (shape, data.into_iter().map(i64::from).collect())
            }
            Stored::U64 => {
                let (shape, data) = read_all::<u64>(&path, name, npy)?;
                (shape, data.into_iter().map(u64::cast_signed).collect())
            }
            _ => return Err(dtype_error(path, name, &npy, EXPECTED)),
        };
        Ok(Array { shape, data })
    }

    /// Reads 1-d array `name` of numpy unicode strings (`<U..`); trailing
    /// NULs are padding and dropped, so empty strings come back empty.
    pub fn strings(&mut self, name: &str) -> Result<Vec<String>> {
        const EXPECTED: &str = "a unicode string array (<U..)";
        let (path, npy, stored) = self.checked_member(name, EXPECTED)?;
        if !matches!(stored, Stored::Unicode) {
            return Err(dtype_error(path, name, &npy, EXPECTED));
        }
        let (shape, data) = read_all::<String>(&path, name, npy)?;
        if shape.len() != 1 {
            return Err(ArtifactError::Shape {
                path,
                name: name.to_string(),
                found: shape,
                expected: "1-d".to_string(),
            });
        }
        Ok(data)
    }

    /// Opens member `name` with its header parsed and its declared size
    /// checked against the member's, and classifies its dtype.
    fn checked_member(
        &mut self,
        name: &str,
        expected: &'static str,
    ) -> Result<(PathBuf, NpyFile<Member<'_>>, Stored)> {
        let (path, npy, member_bytes) = self.member(name)?;
        let Some(stored) = classify(&npy.dtype()) else {
            return Err(dtype_error(path, name, &npy, expected));
        };
        if npy.shape().len() > 1 && npy.order() == Order::Fortran {
            return Err(ArtifactError::FortranOrder {
                path,
                name: name.to_string(),
            });
        }
        let item_bytes = npy.dtype().num_bytes().unwrap_or(usize::MAX);
        let declared_bytes = u128::from(npy.len()) * item_bytes as u128;
        if declared_bytes > u128::from(member_bytes) {
            return Err(ArtifactError::Truncated {
                path,
                name: name.to_string(),
                declared_bytes,
                member_bytes,
            });
        }
        Ok((path, npy, stored))
    }

    /// Opens member `<name>.npy` and parses its header; also returns the
    /// member's uncompressed size.
    fn member(&mut self, name: &str) -> Result<(PathBuf, NpyFile<Member<'_>>, u64)> {
        let path = self.path.clone();
        let entry = match self
            .zip
            .by_name(&npyz::npz::file_name_from_array_name(name))
        {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(ArtifactError::MissingArray {
                    path,
                    name: name.to_string(),
                    available: self.names.clone(),
                });
            }
            Err(cause) => return Err(ArtifactError::Zip { path, cause }),
        };
        let member_bytes = entry.size();
        // Buffered: npyz reads element by element.
        let npy = NpyFile::new(BufReader::new(entry)).map_err(|cause| ArtifactError::Npy {
            path: path.clone(),
            name: name.to_string(),
            cause,
        })?;
        Ok((path, npy, member_bytes))
    }
}

/// The reader of one archive member.
type Member<'a> = BufReader<zip::read::ZipFile<'a, BufReader<File>>>;

/// Which of our element types a dtype is, if any.
fn classify(dtype: &DType) -> Option<Stored> {
    let DType::Plain(ts) = dtype else {
        return None;
    };
    match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 4) => Some(Stored::F32),
        (TypeChar::Float, 2) => Some(Stored::F16),
        (TypeChar::Int, 8) => Some(Stored::I64),
        (TypeChar::Int, 4) => Some(Stored::I32),
        (TypeChar::Uint, 8) => Some(Stored::U64),
        (TypeChar::UnicodeStr, _) => Some(Stored::Unicode),
        _ => None,
    }
}

/// The numpy type string (`<f4`), or the `descr` of a structured dtype.
fn type_string(dtype: &DType) -> String {
    match dtype {
        DType::Plain(ts) => ts.to_string(),
        other => other.descr(),
    }
}

fn dtype_error<R: Read>(
    path: PathBuf,
    name: &str,
    npy: &NpyFile<R>,
    expected: &'static str,
) -> ArtifactError {
    ArtifactError::Dtype {
        path,
        name: name.to_string(),
        found: type_string(&npy.dtype()),
        expected,
    }
}

fn shape_of(path: &Path, name: &str, shape: &[u64]) -> Result<Vec<usize>> {
    shape
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| ArtifactError::Shape {
                path: path.to_path_buf(),
                name: name.to_string(),
                found: Vec::new(),
                expected: format!("dimensions that fit in usize, not {shape:?}"),
            })
        })
        .collect()
}

/// Reads every element of a member whose dtype `T` was already accepted.
fn read_all<T: npyz::Deserialize>(
    path: &Path,
    name: &str,
    npy: NpyFile<impl Read>,
) -> Result<(Vec<usize>, Vec<T>)> {
    let shape = shape_of(path, name, npy.shape())?;
    let data = npy.into_vec::<T>().map_err(|cause| ArtifactError::Npy {
        path: path.to_path_buf(),
        name: name.to_string(),
        cause,
    })?;
    Ok((shape, data))
}

#[cfg(test)]
pub(crate) mod test_npz {
    //! Writers of small `.npz` files for the artifact tests.

    use std::fs::File;
    use std::io::Write;
    use std::path::Path;

    /// A `.npy` (format 1.0) with header dict `dict` and raw `data`.
    pub(crate) fn npy_bytes(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut header = dict.to_string();
        // magic (6) + version (2) + header length (2) + header + '\n', padded to 64.
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        let len = u16::try_from(header.len()).expect("test headers are short");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    /// Writes `path` with one stored (uncompressed) `<name>.npy` per member.
    pub(crate) fn write_npz(path: &Path, members: &[(&str, Vec<u8>)]) {
        let file = File::create(path).expect("temp file");
        let mut zip = zip::ZipWriter::new(file);
        for (name, bytes) in members {
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            zip.start_file(format!("{name}.npy"), options)
                .expect("zip member");
            zip.write_all(bytes).expect("zip write");
        }
        zip.finish().expect("zip finish");
    }
}

#[cfg(test)]
mod tests {
    use super::test_npz::{npy_bytes, write_npz};

    use super::*;

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/phoenix-v2/v2_artifacts")
            .join(rel)
    }

    #[test]
    fn compressed_corpus_reads_through_deflate() -> Result<()> {
        let mut npz = NpzFile::open(fixture("sports_corpus.npz"))?;
        let ids = npz.i64("post_ids")?;
        assert_eq!(ids.shape, vec![20000]);
        let reps = npz.f32("candidate_representations")?;
        assert_eq!(reps.shape, vec![20000, 16]);
        Ok(())
    }

    #[test]
    fn zero_d_log_temperature_reads_as_one_element_of_shape_empty() -> Result<()> {
        let mut npz = NpzFile::open(fixture("retrieval/model_params.npz"))?;
        let t = npz.f32("~/log_temperature")?;
        assert!(t.shape.is_empty());
        assert_eq!(t.data.len(), 1);
        assert!(t.data[0].is_finite());
        Ok(())
    }

    #[test]
    fn topics_keep_empty_and_long_strings() -> Result<()> {
        let mut npz = NpzFile::open(fixture("sports_corpus.npz"))?;
        let topics = npz.strings("topics")?;
        assert_eq!(topics.len(), 20000);
        assert!(topics.iter().any(String::is_empty));
        assert!(topics.iter().any(|t| t.chars().count() > 28));
        Ok(())
    }

    #[test]
    fn missing_array_names_file_and_array() -> Result<()> {
        let path = fixture("sports_corpus.npz");
        let mut npz = NpzFile::open(&path)?;
        let err = npz.f32("no_such_array").expect_err("absent array");
        assert!(matches!(err, ArtifactError::MissingArray { .. }));
        let msg = err.to_string();
        assert!(msg.contains("sports_corpus.npz"), "{msg}");
        assert!(msg.contains("'no_such_array'"), "{msg}");
        assert!(msg.contains("post_ids"), "{msg}");
        Ok(())
    }

    #[test]
    fn wrong_dtype_names_file_array_and_dtype() -> Result<()> {
        let mut npz = NpzFile::open(fixture("sports_corpus.npz"))?;
        let err = npz.f32("post_ids").expect_err("int64 is not f32");
        let msg = err.to_string();
        assert!(matches!(err, ArtifactError::Dtype { .. }));
        assert!(msg.contains("sports_corpus.npz"), "{msg}");
        assert!(msg.contains("'post_ids'"), "{msg}");
        assert!(msg.contains("has dtype '<i8', expected float32"), "{msg}");
        let err = npz
            .i64("candidate_representations")
            .expect_err("f32 is not i64");
        assert!(err.to_string().contains("dtype '<f4',"), "{err}");
        let err = npz.strings("post_ids").expect_err("int64 is not strings");
        assert!(err.to_string().contains("unicode"), "{err}");
        Ok(())
    }

    #[test]
    fn uint64_ids_reinterpret_as_twos_complement_and_int32_widens() -> Result<()> {
        let dir = tempfile::tempdir().expect("temp dir");
        let u: Vec<u8> = [1u64, u64::MAX, 1 << 63]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let i: Vec<u8> = [-7i32, 5].iter().flat_map(|v| v.to_le_bytes()).collect();
        let h: Vec<u8> = [1.5f32, -0.25]
            .iter()
            .flat_map(|&v| npyz::half::f16::from_f32(v).to_le_bytes())
            .collect();
        let path = dir.path().join("test.npz");
        write_npz(
            &path,
            &[
                (
                    "u",
                    npy_bytes(
                        "{'descr': '<u8', 'fortran_order': False, 'shape': (3,), }",
                        &u,
                    ),
                ),
                (
                    "i",
                    npy_bytes(
                        "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }",
                        &i,
                    ),
                ),
                (
                    "h",
                    npy_bytes(
                        "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }",
                        &h,
                    ),
                ),
            ],
        );
        let mut npz = NpzFile::open(&path)?;
        assert_eq!(npz.names(), ["u", "i", "h"]);
        assert_eq!(npz.i64("u")?.data, vec![1, -1, i64::MIN]);
        assert_eq!(npz.i64("i")?.data, vec![-7, 5]);
        assert_eq!(npz.f32("h")?.data, vec![1.5, -0.25]);
        Ok(())
    }

    #[test]
    fn bfloat16_raw_records_are_refused_with_their_type_string() -> Result<()> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("test.npz");
        write_npz(
            &path,
            &[(
                "w",
                npy_bytes(
                    "{'descr': '|V2', 'fortran_order': False, 'shape': (2,), }",
                    &[0, 0x3f, 0, 0x40],
                ),
            )],
        );
        let err = NpzFile::open(&path)?.f32("w").expect_err("|V2 is refused");
        let msg = err.to_string();
        assert!(msg.contains("array 'w' has dtype '|V2',"), "{msg}");
        Ok(())
    }

    #[test]
    fn header_claiming_more_data_than_the_member_is_truncated() -> Result<()> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("test.npz");
        write_npz(
            &path,
            &[(
                "x",
                npy_bytes(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }",
                    &[0; 8],
                ),
            )],
        );
        let err = NpzFile::open(&path)?.f32("x").expect_err("truncated");
        assert!(matches!(err, ArtifactError::Truncated { .. }), "{err}");
        Ok(())
    }

    #[test]
    fn fortran_order_matrix_is_refused() -> Result<()> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("test.npz");
        write_npz(
            &path,
            &[(
                "m",
                npy_bytes(
                    "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
                    &[0; 16],
                ),
            )],
        );
        let err = NpzFile::open(&path)?.f32("m").expect_err("fortran");
        assert!(matches!(err, ArtifactError::FortranOrder { .. }), "{err}");
        Ok(())
    }

    #[test]
    fn not_a_zip_names_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bad.npz");
        std::fs::write(&path, b"not a zip").expect("write");
        let err = NpzFile::open(&path).expect_err("not a zip");
        assert!(err.to_string().contains("bad.npz"), "{err}");
    }
}
