//! The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum of
//! 16-bit big-endian words. IPv4 headers (RFC 791) and UDP (RFC 768, RFC 8200 §8.1 for IPv6)
//! use it.

/// The unfolded sum of `parts` as one byte sequence split anywhere on an even boundary: each
/// part but the last must have an even length (an odd trailing byte is the high half of a
/// zero-padded word, RFC 1071 §4.1). A `u32` cannot overflow for any input below 128 KiB,
/// far above the largest IP datagram's 64 KiB.
pub fn sum(parts: &[&[u8]]) -> u32 {
    let mut sum = 0u32;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(u16::from_be_bytes([*last, 0]));
        }
    }
    sum
}

/// Folds a [`sum`] to 16 bits and complements it: the checksum to put in a header, or, over
/// data that already holds its checksum, 0 when it verifies.
pub fn finish(mut sum: u32) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_rfc_1071_example() {
        // RFC 1071 §3: these bytes sum to 0xddf2 (folded), so the checksum is its complement.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(sum(&[&bytes])), !0xddf2);
        // An odd trailing byte is the high half of a zero-padded word.
        assert_eq!(sum(&[&bytes, &[0xab]]), sum(&[&bytes]) + 0xab00);
    }

    #[test]
    fn data_holding_its_checksum_verifies_to_zero() {
        let mut bytes = [0x45, 0x00, 0x00, 0x1c, 0xbe, 0xef, 0, 0, 0x12, 0x34];
        let csum = finish(sum(&[&bytes]));
        bytes[6..8].copy_from_slice(&csum.to_be_bytes());
        assert_eq!(finish(sum(&[&bytes])), 0);
    }
}
