//! Event files: a sequence of length-delimited `InNetworkEvent` protobufs
//! (varint length, then the message: prost's `encode_length_delimited`), the
//! format of `foryou thunder replay` and `foryou thunder synth`.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use foryou_proto::v1::InNetworkEvent;
use prost::Message;

/// Largest accepted record; a length above this means a corrupt file.
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// An event file error, naming the file and the byte offset of the record.
#[derive(Debug, thiserror::Error)]
pub enum EventFileError {
    /// Opening, reading or writing failed.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// A record is cut short, too large or undecodable.
    #[error("{path}: record {index} at byte {offset}: {what}")]
    Record {
        /// The file.
        path: PathBuf,
        /// Zero-based record number.
        index: u64,
        /// Byte offset of the record's length prefix.
        offset: u64,
        /// What is wrong.
        what: String,
    },
}

/// Reads events one at a time (constant memory).
#[derive(Debug)]
pub struct EventFileReader {
    path: PathBuf,
    reader: BufReader<File>,
    offset: u64,
    index: u64,
    buf: Vec<u8>,
}

impl EventFileReader {
    /// Opens `path`.
    pub fn open(path: &Path) -> Result<Self, EventFileError> {
        let file = File::open(path).map_err(|cause| EventFileError::Io {
            path: path.to_owned(),
            cause,
        })?;
        Ok(Self {
            path: path.to_owned(),
            reader: BufReader::with_capacity(1 << 16, file),
            offset: 0,
            index: 0,
            buf: Vec::new(),
        })
    }

    fn record_error(&self, what: impl Into<String>) -> EventFileError {
        EventFileError::Record {
            path: self.path.clone(),
            index: self.index,
            offset: self.offset,
            what: what.into(),
        }
    }

    fn io_error(&self, cause: std::io::Error) -> EventFileError {
        EventFileError::Io {
            path: self.path.clone(),
            cause,
        }
    }

    /// The varint length prefix; `None` at a clean end of file.
    fn read_len(&mut self) -> Result<Option<(u64, u64)>, EventFileError> {
        let mut value = 0u64;
        for i in 0..10u32 {
            let first = match self.reader.fill_buf() {
                Ok(buf) => buf.first().copied(),
                Err(e) => return Err(self.io_error(e)),
            };
            let byte = match first {
                Some(b) => b,
                None if i == 0 => return Ok(None),
                None => return Err(self.record_error("file ends inside a length prefix")),
            };
            self.reader.consume(1);
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(Some((value, u64::from(i) + 1)));
            }
        }
        Err(self.record_error("length prefix longer than 10 bytes"))
    }
}

impl Iterator for EventFileReader {
    type Item = Result<InNetworkEvent, EventFileError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (len, prefix) = match self.read_len() {
            Ok(Some(v)) => v,
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        };
        if len > MAX_RECORD_BYTES {
            return Some(Err(self.record_error(format!(
                "record length {len} exceeds {MAX_RECORD_BYTES} bytes"
            ))));
        }
        self.buf.resize(len as usize, 0);
        if let Err(e) = self.reader.read_exact(&mut self.buf) {
            return Some(Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.record_error(format!("file ends inside a {len}-byte record"))
            } else {
                self.io_error(e)
            }));
        }
        let event = match InNetworkEvent::decode(self.buf.as_slice()) {
            Ok(ev) => ev,
            Err(e) => return Some(Err(self.record_error(format!("not an InNetworkEvent: {e}")))),
        };
        self.offset += prefix + len;
        self.index += 1;
        Some(Ok(event))
    }
}

/// Writes events to `path` (created or truncated); returns the count.
pub fn write_event_file<'a>(
    path: &Path,
    events: impl IntoIterator<Item = &'a InNetworkEvent>,
) -> Result<u64, EventFileError> {
    let io = |cause| EventFileError::Io {
        path: path.to_owned(),
        cause,
    };
    let mut w = BufWriter::new(File::create(path).map_err(io)?);
    let mut n = 0;
    let mut buf = Vec::new();
    for ev in events {
        buf.clear();
        ev.encode_length_delimited(&mut buf)
            .map_err(|e| io(std::io::Error::other(e)))?;
        w.write_all(&buf).map_err(io)?;
        n += 1;
    }
    w.flush().map_err(io)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thunder::events::{create_event, delete_event};
    use crate::thunder::light_post::{LightPost, PostDelete};

    fn sample() -> Vec<InNetworkEvent> {
        (1..=300)
            .map(|i| {
                if i % 7 == 0 {
                    delete_event(&PostDelete {
                        post_id: i - 1,
                        deleted_at: 1_800_000_000,
                    })
                } else {
                    create_event(&LightPost::original(i, i % 13 + 1, 1_800_000_000 - i))
                }
            })
            .collect()
    }

    #[test]
    fn written_events_read_back_identically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ev.bin");
        let events = sample();
        assert_eq!(write_event_file(&path, &events).expect("write"), 300);
        let back: Vec<InNetworkEvent> = EventFileReader::open(&path)
            .expect("open")
            .collect::<Result<_, _>>()
            .expect("read");
        assert_eq!(back, events);
    }

    #[test]
    fn truncated_file_names_the_record_and_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ev.bin");
        let events = sample();
        write_event_file(&path, &events[..2]).expect("write");
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() - 3]).expect("truncate");
        let mut r = EventFileReader::open(&path).expect("open");
        assert!(r.next().is_some_and(|e| e.is_ok()));
        let err = r.next().expect("an item").expect_err("truncated");
        let msg = err.to_string();
        assert!(msg.contains("record 1 at byte"), "{msg}");
        assert!(msg.contains("ev.bin"), "{msg}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("junk.bin");
        std::fs::write(&path, [0x05, 0xff, 0xff, 0xff, 0xff, 0xff]).expect("write");
        let err = EventFileReader::open(&path)
            .expect("open")
            .next()
            .expect("an item")
            .expect_err("garbage");
        assert!(err.to_string().contains("record 0 at byte 0"), "{err}");
        let huge = dir.path().join("huge.bin");
        std::fs::write(&huge, [0xff, 0xff, 0xff, 0xff, 0x0f]).expect("write");
        let err = EventFileReader::open(&huge)
            .expect("open")
            .next()
            .expect("an item")
            .expect_err("too large");
        assert!(err.to_string().contains("exceeds"), "{err}");
        assert!(EventFileReader::open(&dir.path().join("missing")).is_err());
    }
}
