//! Kinesis shard routing (pure): the MD5 of the partition key, read as a big-endian 128-bit
//! unsigned integer, is the record's hash key; a stream of N shards created evenly splits the hash
//! key space into N contiguous ranges, shard `i` starting at `i * floor(2^128 / N)` and the last
//! shard ending at `2^128 - 1` (what Kinesis `CreateStream` does).

use md5::{Digest, Md5};

/// The Kinesis hash key of a partition key: MD5 of its UTF-8 bytes as a big-endian `u128`.
pub fn hash_key(partition_key: &str) -> u128 {
    let digest: [u8; 16] = Md5::digest(partition_key.as_bytes()).into();
    u128::from_be_bytes(digest)
}

/// An inclusive range of hash keys owned by one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashKeyRange {
    /// First hash key of the range.
    pub starting_hash_key: u128,
    /// Last hash key of the range (inclusive).
    pub ending_hash_key: u128,
}

/// `floor(2^128 / shards)` for `shards >= 2`.
fn step(shards: u32) -> u128 {
    let n = u128::from(shards);
    // floor(2^128 / n) = floor((2^128 - 1) / n), plus one when n divides 2^128.
    u128::MAX / n + u128::from(u128::MAX % n == n - 1)
}

/// The hash key ranges of a stream created with `shards` shards (empty for 0 shards).
pub fn shard_ranges(shards: u32) -> Vec<HashKeyRange> {
    match shards {
        0 => Vec::new(),
        1 => vec![HashKeyRange { starting_hash_key: 0, ending_hash_key: u128::MAX }],
        n => {
            let step = step(n);
            (0..n)
                .map(|i| {
                    let start = step * u128::from(i);
                    let end = if i + 1 == n { u128::MAX } else { step * u128::from(i + 1) - 1 };
                    HashKeyRange { starting_hash_key: start, ending_hash_key: end }
                })
                .collect()
        }
    }
}

/// The index of the shard owning `hash_key` in a stream of `shards` evenly split shards
/// (0 when `shards <= 1`).
pub fn shard_for_hash_key(hash_key: u128, shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    let idx = hash_key / step(shards);
    // The last shard also owns the remainder of the key space.
    u32::try_from(idx).map_or(shards - 1, |i| i.min(shards - 1))
}

/// The index of the shard a record with `partition_key` goes to.
pub fn shard_for_partition_key(partition_key: &str, shards: u32) -> u32 {
    shard_for_hash_key(hash_key(partition_key), shards)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn md5_test_vectors() {
        // RFC 1321 appendix A.5.
        assert_eq!(hash_key(""), 0xd41d8cd98f00b204e9800998ecf8427e);
        assert_eq!(hash_key("a"), 0x0cc175b9c0f1b6a831c399e269772661);
        assert_eq!(hash_key("abc"), 0x900150983cd24fb0d6963f7d28e17f72);
        assert_eq!(hash_key("message digest"), 0xf96b697d7cb7938d525a2f31aaf161d0);
    }

    #[test]
    fn three_shard_ranges_match_kinesis() {
        // DescribeStream of a 3-shard stream created by Kinesis.
        let r = shard_ranges(3);
        assert_eq!(r[0].starting_hash_key, 0);
        assert_eq!(r[0].ending_hash_key, 113427455640312821154458202477256070484);
        assert_eq!(r[1].starting_hash_key, 113427455640312821154458202477256070485);
        assert_eq!(r[1].ending_hash_key, 226854911280625642308916404954512140969);
        assert_eq!(r[2].starting_hash_key, 226854911280625642308916404954512140970);
        assert_eq!(r[2].ending_hash_key, u128::MAX);
    }

    #[test]
    fn power_of_two_ranges() {
        let r = shard_ranges(4);
        assert_eq!(r[0].ending_hash_key, (1u128 << 126) - 1);
        assert_eq!(r[1].starting_hash_key, 1u128 << 126);
        assert_eq!(r[3].starting_hash_key, 3u128 << 126);
        assert_eq!(r[3].ending_hash_key, u128::MAX);
        // "abc" hashes to 0x9001..., whose top two bits are 0b10: shard 2 of 4.
        assert_eq!(shard_for_partition_key("abc", 4), 2);
        // "" hashes to 0xd41d..., top bits 0b11: shard 3 of 4.
        assert_eq!(shard_for_partition_key("", 4), 3);
        assert_eq!(shard_for_partition_key("a", 4), 0);
    }

    proptest! {
        #[test]
        fn ranges_tile_the_key_space_and_routing_agrees(shards in 1u32..200, key in any::<u128>()) {
            let r = shard_ranges(shards);
            prop_assert_eq!(r.len(), shards as usize);
            prop_assert_eq!(r[0].starting_hash_key, 0);
            prop_assert_eq!(r[r.len() - 1].ending_hash_key, u128::MAX);
            for w in r.windows(2) {
                prop_assert_eq!(w[0].ending_hash_key + 1, w[1].starting_hash_key);
            }
            let i = shard_for_hash_key(key, shards) as usize;
            prop_assert!(r[i].starting_hash_key <= key && key <= r[i].ending_hash_key);
        }
    }
}
