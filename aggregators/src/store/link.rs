//! The stored form of a link's entries (pure): version byte 1, then zstd of
//! `varint count, count * (varint len, dims JSON, varint len, AggState encoding)`.
//!
//! Entries are sorted by their dims text, so equal links encode to equal bytes.

use crate::key::{DimValue, dims_text, parse_dims_text};
use crate::state::AggState;
use crate::varint;

/// First byte of every encoded link body.
pub const LINK_ENCODING_VERSION: u8 = 1;

/// zstd level: 3 is zstd's default, close to level 19's ratio on link bodies in a fraction of the time.
const ZSTD_LEVEL: i32 = 3;

/// Largest decompressed body accepted (a corrupt length must not allocate gigabytes).
const MAX_BODY_BYTES: usize = 256 << 20;

/// Why stored link bytes are not a link body. Not retryable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkDecodeError {
    #[error("link encoding version {0} is unknown to this build (it reads {LINK_ENCODING_VERSION})")]
    UnknownVersion(u8),
    #[error("link body is malformed: {0}")]
    Malformed(&'static str),
}

/// Encodes `entries` (see the module docs). Fails only if the compressor cannot allocate.
pub fn encode_entries(entries: &[(Vec<DimValue>, AggState)]) -> std::io::Result<Vec<u8>> {
    let mut rows: Vec<(String, Vec<u8>)> = entries.iter().map(|(d, s)| (dims_text(d), s.encode())).collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut body = Vec::with_capacity(rows.iter().map(|(d, s)| d.len() + s.len() + 6).sum::<usize>() + 5);
    varint::put(&mut body, rows.len() as u64);
    for (d, s) in &rows {
        varint::put(&mut body, d.len() as u64);
        body.extend_from_slice(d.as_bytes());
        varint::put(&mut body, s.len() as u64);
        body.extend_from_slice(s);
    }
    let mut out = vec![LINK_ENCODING_VERSION];
    out.extend_from_slice(&zstd::bulk::compress(&body, ZSTD_LEVEL)?);
    Ok(out)
}

/// Decodes [`encode_entries`] output; never panics.
pub fn decode_entries(bytes: &[u8]) -> Result<Vec<(Vec<DimValue>, AggState)>, LinkDecodeError> {
    let (&version, z) = bytes.split_first().ok_or(LinkDecodeError::Malformed("empty"))?;
    if version != LINK_ENCODING_VERSION {
        return Err(LinkDecodeError::UnknownVersion(version));
    }
    let size = zstd::zstd_safe::get_frame_content_size(z)
        .ok()
        .flatten()
        .ok_or(LinkDecodeError::Malformed("not a zstd frame with a content size"))?;
    let size =
        usize::try_from(size).ok().filter(|s| *s <= MAX_BODY_BYTES).ok_or(LinkDecodeError::Malformed("too large"))?;
    let body = zstd::bulk::decompress(z, size).map_err(|_| LinkDecodeError::Malformed("zstd"))?;
    let mut input = body.as_slice();
    let count = varint::get(&mut input).ok_or(LinkDecodeError::Malformed("count"))?;
    let mut out = Vec::with_capacity(usize::try_from(count.min(1 << 16)).unwrap_or(0));
    for _ in 0..count {
        let d = take(&mut input)?;
        let dims = std::str::from_utf8(d)
            .ok()
            .and_then(parse_dims_text)
            .ok_or(LinkDecodeError::Malformed("dimension values"))?;
        let state = AggState::decode(take(&mut input)?).map_err(|_| LinkDecodeError::Malformed("state"))?;
        out.push((dims, state));
    }
    if !input.is_empty() {
        return Err(LinkDecodeError::Malformed("trailing bytes"));
    }
    Ok(out)
}

fn take<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], LinkDecodeError> {
    let len = varint::get(input).and_then(|l| usize::try_from(l).ok()).ok_or(LinkDecodeError::Malformed("length"))?;
    if len > input.len() {
        return Err(LinkDecodeError::Malformed("length"));
    }
    let (head, rest) = input.split_at(len);
    *input = rest;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Observation, StateBuilder};
    use proptest::prelude::*;

    fn state(n: u32) -> AggState {
        let mut b = StateBuilder::default();
        for i in 0..n {
            b.add(
                &Observation { measure: Some(f64::from(i) * 1.5), identity: Some(i.wrapping_mul(2_654_435_761)) },
                None,
                i % 7 == 0,
            );
        }
        b.finish()
    }

    #[test]
    fn roundtrip_sorted_by_dims() {
        let entries = vec![
            (vec![DimValue::Str("web".into()), DimValue::Int(3)], state(40)),
            (vec![DimValue::Str("ios".into()), DimValue::Int(-1)], state(3)),
            (vec![], AggState::default()),
        ];
        let bytes = encode_entries(&entries).unwrap();
        let mut sorted = entries.clone();
        sorted.sort_by_key(|(d, _)| dims_text(d));
        assert_eq!(decode_entries(&bytes).unwrap(), sorted);
        assert_eq!(encode_entries(&sorted).unwrap(), bytes, "equal links encode equally");
    }

    #[test]
    fn rejects_bad_bytes() {
        assert_eq!(decode_entries(&[]), Err(LinkDecodeError::Malformed("empty")));
        assert_eq!(decode_entries(&[7, 1, 2]), Err(LinkDecodeError::UnknownVersion(7)));
        let mut bytes = encode_entries(&[(vec![DimValue::Int(1)], state(5))]).unwrap();
        bytes.truncate(bytes.len() - 2);
        assert!(matches!(decode_entries(&bytes), Err(LinkDecodeError::Malformed(_))));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_entries(&bytes);
            let mut v = vec![LINK_ENCODING_VERSION];
            v.extend(zstd::bulk::compress(&bytes, 1).unwrap());
            let _ = decode_entries(&v);
        }
    }
}
