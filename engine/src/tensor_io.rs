//! Reading and writing safetensors files: memory-mapped reads with shape and
//! dtype checks that name the tensor, small in-memory writes for outputs, and a
//! streaming writer for multi-gigabyte weight files.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, Metadata, TensorInfo};

use crate::error::{EngineError, Result};

/// A memory-mapped safetensors file whose header has been parsed once.
pub struct SafetensorsFile {
    path: PathBuf,
    mmap: memmap2::Mmap,
    header_len: usize,
    metadata: Metadata,
}

/// Element data of one tensor, widened to a working type.
#[derive(Debug, Clone)]
pub struct HostTensor<T> {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Row-major elements.
    pub data: Vec<T>,
}

impl SafetensorsFile {
    /// Opens and maps `path`, parsing its header.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| EngineError::io(path, e))?;
        // SAFETY: the map is read-only and lives as long as `Self`. We do not
        // modify the file; a concurrent writer could change what we read, which
        // at worst yields wrong numbers or a parse error, never unsoundness in
        // our code since every read goes through bounds-checked slices.
        #[allow(unsafe_code)]
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| EngineError::io(path, e))?;
        let (header_len, metadata) =
            safetensors::SafeTensors::read_metadata(&mmap[..]).map_err(|e| {
                EngineError::Safetensors {
                    path: path.display().to_string(),
                    message: e.to_string(),
                }
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            header_len,
            metadata,
        })
    }

    /// The file's path, for error messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names, dtypes and shapes of every tensor, sorted by name.
    pub fn entries(&self) -> BTreeMap<String, (Dtype, Vec<usize>)> {
        self.metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| (name, (info.dtype, info.shape.clone())))
            .collect()
    }

    /// Whether a tensor of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.metadata.info(name).is_some()
    }

    fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.metadata
            .info(name)
            .ok_or_else(|| self.error(format!("missing tensor '{name}'")))
    }

    fn error(&self, message: String) -> EngineError {
        EngineError::Input(format!("{}: {message}", self.path.display()))
    }

    fn bytes(&self, info: &TensorInfo) -> &[u8] {
        let start = 8 + self.header_len + info.data_offsets.0;
        let end = 8 + self.header_len + info.data_offsets.1;
        // read_metadata has checked that the offsets lie inside the buffer.
        &self.mmap[start..end]
    }

    /// Shape of a tensor, or an error naming it when absent.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.info(name)?.shape.clone())
    }

    fn check_shape(&self, name: &str, info: &TensorInfo, expected: Option<&[usize]>) -> Result<()> {
        if let Some(expected) = expected
            && info.shape != expected
        {
            return Err(self.error(format!(
                "tensor '{name}' has shape {:?}, expected {:?}",
                info.shape, expected
            )));
        }
        Ok(())
    }

    /// Reads a floating tensor (F32, BF16, F16 or F64) as f32, checking its shape
    /// when `expected` is given.
    pub fn read_f32(&self, name: &str, expected: Option<&[usize]>) -> Result<HostTensor<f32>> {
        let info = self.info(name)?;
        self.check_shape(name, info, expected)?;
        let bytes = self.bytes(info);
        let data: Vec<f32> = match info.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::F64 => bytes
                .chunks_exact(8)
                .map(|c| {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                })
                .collect(),
            other => {
                return Err(self.error(format!(
                    "tensor '{name}' has dtype {other:?}, expected a float type (F32, BF16, F16, F64)"
                )));
            }
        };
        Ok(HostTensor {
            shape: info.shape.clone(),
            data,
        })
    }

    /// Reads an integer tensor (I32, I64, U8, U32, I16, I8) as i64.
    pub fn read_int(&self, name: &str, expected: Option<&[usize]>) -> Result<HostTensor<i64>> {
        let info = self.info(name)?;
        self.check_shape(name, info, expected)?;
        let bytes = self.bytes(info);
        let data: Vec<i64> = match info.dtype {
            Dtype::I32 => bytes
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            Dtype::U32 => bytes
                .chunks_exact(4)
                .map(|c| i64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            Dtype::I64 => bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
            Dtype::I16 => bytes
                .chunks_exact(2)
                .map(|c| i64::from(i16::from_le_bytes([c[0], c[1]])))
                .collect(),
            Dtype::U8 | Dtype::BOOL => bytes.iter().map(|&b| i64::from(b)).collect(),
            Dtype::I8 => bytes.iter().map(|&b| i64::from(b as i8)).collect(),
            other => {
                return Err(self.error(format!(
                    "tensor '{name}' has dtype {other:?}, expected an integer type"
                )));
            }
        };
        Ok(HostTensor {
            shape: info.shape.clone(),
            data,
        })
    }
}

/// One tensor to write: its name, shape and raw little-endian bytes.
pub struct OutTensor {
    /// Tensor name.
    pub name: String,
    /// safetensors dtype of `bytes`.
    pub dtype: Dtype,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Little-endian element bytes.
    pub bytes: Vec<u8>,
}

impl OutTensor {
    /// An F32 tensor.
    pub fn f32(name: &str, shape: Vec<usize>, data: &[f32]) -> Self {
        Self {
            name: name.to_string(),
            dtype: Dtype::F32,
            shape,
            bytes: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// An I32 tensor.
    pub fn i32(name: &str, shape: Vec<usize>, data: &[i32]) -> Self {
        Self {
            name: name.to_string(),
            dtype: Dtype::I32,
            shape,
            bytes: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// The elements widened to f64 (F32, I32 and U8, the dtypes we write).
    pub fn values_f64(&self) -> Vec<f64> {
        match self.dtype {
            Dtype::F32 => self
                .bytes
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            Dtype::I32 => self
                .bytes
                .chunks_exact(4)
                .map(|c| f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            _ => self.bytes.iter().map(|&b| f64::from(b)).collect(),
        }
    }

    /// A U8 tensor (the fixtures' boolean masks).
    pub fn u8(name: &str, shape: Vec<usize>, data: &[u8]) -> Self {
        Self {
            name: name.to_string(),
            dtype: Dtype::U8,
            shape,
            bytes: data.to_vec(),
        }
    }
}

/// Writes small tensors to `path` in one go.
pub fn write_tensors(path: &Path, tensors: &[OutTensor]) -> Result<()> {
    let specs: Vec<TensorSpec> = tensors
        .iter()
        .map(|t| TensorSpec {
            name: t.name.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
        })
        .collect();
    let mut writer = StreamingWriter::create(path, &specs)?;
    for t in tensors {
        writer.write_bytes(&t.bytes)?;
    }
    writer.finish()
}

/// Name, dtype and shape of a tensor announced in a streaming write.
#[derive(Debug, Clone)]
pub struct TensorSpec {
    /// Tensor name.
    pub name: String,
    /// Element dtype.
    pub dtype: Dtype,
    /// Dimensions.
    pub shape: Vec<usize>,
}

impl TensorSpec {
    /// Size of the tensor's data in bytes.
    pub fn byte_len(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.bitsize() / 8
    }
}

/// Writes a safetensors file tensor by tensor, in the order of the specs given
/// to [`StreamingWriter::create`], so that no tensor has to be held in memory
/// whole. The header is written first; `finish` checks that every announced
/// byte arrived.
pub struct StreamingWriter {
    path: PathBuf,
    out: BufWriter<File>,
    expected: usize,
    written: usize,
}

impl StreamingWriter {
    /// Creates `path` and writes the header for `specs` (data laid out in order).
    pub fn create(path: &Path, specs: &[TensorSpec]) -> Result<Self> {
        let mut header = serde_json::Map::new();
        let mut offset = 0usize;
        for spec in specs {
            let len = spec.byte_len();
            header.insert(
                spec.name.clone(),
                serde_json::json!({
                    "dtype": format!("{:?}", spec.dtype),
                    "shape": spec.shape,
                    "data_offsets": [offset, offset + len],
                }),
            );
            offset += len;
        }
        let mut json = serde_json::Value::Object(header).to_string().into_bytes();
        // The format asks for the data to start 8-byte aligned; pad with spaces.
        while !json.len().is_multiple_of(8) {
            json.push(b' ');
        }
        let file = File::create(path).map_err(|e| EngineError::io(path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let io = |e| EngineError::io(path, e);
        out.write_all(&(json.len() as u64).to_le_bytes())
            .map_err(io)?;
        out.write_all(&json).map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            out,
            expected: offset,
            written: 0,
        })
    }

    /// Appends raw little-endian element bytes.
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.written += bytes.len();
        self.out
            .write_all(bytes)
            .map_err(|e| EngineError::io(&self.path, e))
    }

    /// Appends f32 elements.
    pub fn write_f32(&mut self, data: &[f32]) -> Result<()> {
        let mut buf = Vec::with_capacity(data.len() * 4);
        for v in data {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        self.write_bytes(&buf)
    }

    /// Flushes and checks that exactly the announced number of bytes was written.
    pub fn finish(mut self) -> Result<()> {
        self.out
            .flush()
            .map_err(|e| EngineError::io(&self.path, e))?;
        if self.written != self.expected {
            return Err(EngineError::io(
                &self.path,
                std::io::Error::other(format!(
                    "wrote {} data bytes, header announced {}",
                    self.written, self.expected
                )),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_file_reads_back_with_safetensors_and_our_reader() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.safetensors");
        write_tensors(
            &path,
            &[
                OutTensor::f32("a", vec![2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]),
                OutTensor::i32("b", vec![3], &[-1, 0, 7]),
                OutTensor::u8("c", vec![1], &[1]),
            ],
        )
        .expect("write");
        let bytes = std::fs::read(&path).expect("read");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
        assert_eq!(st.tensor("a").expect("a").shape(), &[2, 3]);
        let f = SafetensorsFile::open(&path).expect("open");
        assert_eq!(f.read_f32("a", Some(&[2, 3])).expect("a").data[5], 6.5);
        assert_eq!(f.read_int("b", None).expect("b").data, vec![-1, 0, 7]);
        let err = f.read_f32("a", Some(&[3, 2])).expect_err("wrong shape");
        assert!(
            err.to_string()
                .contains("'a' has shape [2, 3], expected [3, 2]")
        );
        assert!(
            f.read_f32("zz", None)
                .expect_err("missing")
                .to_string()
                .contains("'zz'")
        );
    }

    #[test]
    fn short_stream_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.safetensors");
        let spec = TensorSpec {
            name: "x".into(),
            dtype: Dtype::F32,
            shape: vec![4],
        };
        let mut w = StreamingWriter::create(&path, &[spec]).expect("create");
        w.write_f32(&[1.0, 2.0]).expect("write");
        assert!(w.finish().is_err());
    }

    #[test]
    fn garbage_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.safetensors");
        std::fs::write(&path, b"not a safetensors file at all").expect("write");
        let err = SafetensorsFile::open(&path)
            .err()
            .expect("must fail")
            .to_string();
        assert!(err.contains("bad.safetensors"), "{err}");
    }
}
