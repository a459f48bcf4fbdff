//! [`StrictProstCodec`]: prost's gRPC codec, except that a message that is
//! not valid protobuf is INVALID_ARGUMENT ("malformed protobuf message:
//! ..."), not the INTERNAL tonic-prost answers. A malformed request is the
//! caller's fault, and INTERNAL would tell clients and alerts that the
//! server broke (issue 18). The generated services and clients use it
//! (`build.rs`: `codec_path`); encoding is prost's, unchanged.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// Prost encoding; decode errors as INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct StrictProstCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for StrictProstCodec<T, U> {
    fn default() -> Self {
        Self { _pd: PhantomData }
    }
}

impl<T, U> Codec for StrictProstCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder(ProstDecoder::new(BufferSettings::default()))
    }
}

/// Prost's decoder with its INTERNAL decode errors turned INVALID_ARGUMENT.
#[derive(Debug)]
pub struct StrictDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|s| match s.code() {
            Code::Internal => {
                Status::invalid_argument(format!("malformed protobuf message: {}", s.message()))
            }
            _ => s,
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
