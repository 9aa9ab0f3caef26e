//! The codec of every generated service and client: prost's, except that a message that does not
//! decode is the sender's mistake, `INVALID_ARGUMENT`, where tonic-prost answers `INTERNAL`.
//!
//! `build.rs` selects it with `codec_path`, so every `mortar.v1` and `mortar.internal.v1` method
//! uses it (tested end to end in `tests/cluster.rs`). A client that cannot decode a reply sees the
//! same code; the message names the message type that did not decode.

use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// [`ProstCodec`] with decode errors mapped to `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct MortarCodec<T, U> {
    inner: ProstCodec<T, U>,
}

impl<T, U> Default for MortarCodec<T, U> {
    fn default() -> Self {
        Self { inner: ProstCodec::default() }
    }
}

impl<T, U> Codec for MortarCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = MortarDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.inner.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        MortarDecoder { inner: self.inner.decoder() }
    }
}

/// [`ProstDecoder`] whose errors are `INVALID_ARGUMENT`, naming the message type.
#[derive(Debug, Clone)]
pub struct MortarDecoder<U> {
    inner: ProstDecoder<U>,
}

impl<U: prost::Message + Default> Decoder for MortarDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.inner.decode(buf).map_err(|status| {
            let message = std::any::type_name::<U>().rsplit("::").next().unwrap_or("message");
            Status::invalid_argument(format!(
                "cannot decode the {message}: it is not a valid Protobuf encoding ({})",
                status.message()
            ))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.inner.buffer_settings()
    }
}
