//! G.711 companding (ITU-T G.711): µ-law for PCMU and A-law for PCMA (RFC 3551 §4.5.14).
//!
//! Samples are 16-bit linear PCM. The arithmetic is that of Sun's public-domain `g711.c`, the
//! reference most stacks share: µ-law adds a bias of 0x84 to the magnitude (clipped at 32635)
//! and inverts every bit of the code; A-law drops the 3 low bits and toggles the even bits
//! (0x55) of the code.
//!
//! Decoding is a lookup in a 256-entry table; encoding is a lookup in a table indexed by the
//! bits of the sample that can change the code. Every table is computed at compile time by a
//! `const fn` from the formula, so the fast path cannot drift from it; the tests check all 256
//! codes and all 65,536 inputs against an independent implementation.

use core::fmt;
use core::str::FromStr;

/// Added to the µ-law magnitude so that each segment starts at a power of two (G.711 Table 2).
const ULAW_BIAS: u32 = 0x84;
/// Largest magnitude µ-law encodes without saturating: 32635 + 0x84 = 0x7FFF.
const ULAW_CLIP: u32 = 32635;

/// µ-law code of a non-negative magnitude, for a positive sample: the sign bit of the result is
/// set (G.711 inverts every bit, and a positive sign is 0 before inversion).
const fn ulaw_code_of_magnitude(magnitude: u32) -> u8 {
    let magnitude = if magnitude > ULAW_CLIP {
        ULAW_CLIP
    } else {
        magnitude
    };
    let biased = magnitude + ULAW_BIAS; // 0x84..=0x7FFF: the top set bit is bit 7..=14
    let exponent = biased.ilog2() - 7;
    let mantissa = (biased >> (exponent + 3)) & 0x0F;
    !(((exponent << 4) | mantissa) as u8)
}

/// A-law code of a sample already shifted right by 3 (a 13-bit signed value), G.711 Table 1.
const fn alaw_code_of_shifted(shifted: i32) -> u8 {
    // A-law is sign-magnitude in one's complement: -1 encodes like 0, with the sign bit clear.
    let (toggle, magnitude) = if shifted >= 0 {
        (0xD5, shifted as u32)
    } else {
        (0x55, !shifted as u32)
    };
    // Segment 0 covers 0..32 at the same step as segment 1 covers 32..64.
    let segment = if magnitude < 0x20 {
        0
    } else {
        magnitude.ilog2() - 4
    };
    let shift = if segment < 2 { 1 } else { segment };
    let quantised = (magnitude >> shift) & 0x0F;
    ((segment << 4) | quantised) as u8 ^ toggle
}

const fn ulaw_decode_formula(code: u8) -> i16 {
    let code = !code;
    let exponent = (code >> 4) & 0x07;
    let t = ((((code & 0x0F) as i32) << 3) + ULAW_BIAS as i32) << exponent;
    (if code & 0x80 != 0 {
        ULAW_BIAS as i32 - t
    } else {
        t - ULAW_BIAS as i32
    }) as i16
}

const fn alaw_decode_formula(code: u8) -> i16 {
    let code = code ^ 0x55;
    let segment = (code >> 4) & 0x07;
    let t = ((code & 0x0F) as i32) << 4;
    let t = match segment {
        0 => t + 8,
        1 => t + 0x108,
        _ => (t + 0x108) << (segment - 1),
    };
    (if code & 0x80 != 0 { t } else { -t }) as i16
}

/// µ-law codes for positive samples, indexed by `magnitude >> 2` for magnitudes 0..=32768. The 2
/// low bits never change the code: the bias is a multiple of 4 and the mantissa is taken from
/// bit 3 upwards. Negative samples use the same entry with the sign bit cleared.
static ULAW_ENCODE: [u8; (1 << 13) + 1] = {
    let mut table = [0; (1 << 13) + 1];
    let mut i = 0;
    while i < table.len() {
        table[i] = ulaw_code_of_magnitude((i as u32) << 2);
        i += 1;
    }
    table
};

/// A-law codes indexed by the 13 high bits of the sample, `(sample as u16) >> 3`.
static ALAW_ENCODE: [u8; 1 << 13] = {
    let mut table = [0; 1 << 13];
    let mut i = 0;
    while i < table.len() {
        // Sign-extend the 13-bit index back to the shifted sample.
        let shifted = if i < (1 << 12) {
            i as i32
        } else {
            i as i32 - (1 << 13)
        };
        table[i] = alaw_code_of_shifted(shifted);
        i += 1;
    }
    table
};

static ULAW_DECODE: [i16; 256] = {
    let mut table = [0; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_decode_formula(i as u8);
        i += 1;
    }
    table
};

static ALAW_DECODE: [i16; 256] = {
    let mut table = [0; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_decode_formula(i as u8);
        i += 1;
    }
    table
};

/// Encodes one linear sample to µ-law (G.711 Table 2). Magnitudes above 32635 saturate.
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    let code = ULAW_ENCODE[usize::from(sample.unsigned_abs() >> 2)];
    if sample < 0 { code & 0x7F } else { code }
}

/// Decodes one µ-law code to a linear sample in -32124..=32124 (G.711 Table 2).
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[usize::from(code)]
}

/// Encodes one linear sample to A-law (G.711 Table 1).
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    ALAW_ENCODE[usize::from(sample as u16 >> 3)]
}

/// Decodes one A-law code to a linear sample in -32256..=32256 (G.711 Table 1).
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[usize::from(code)]
}

/// The G.711 payload formats with static payload types (RFC 3551 §6, Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// µ-law, payload type 0.
    Pcmu,
    /// A-law, payload type 8.
    Pcma,
}

impl Codec {
    /// Every codec, in payload-type order: what [`Codec::from_str`] accepts, and the names the
    /// control plane's API documents.
    pub const ALL: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

    /// The static RTP payload type (RFC 3551 §6).
    pub const fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The codec of a static RTP payload type, if it is G.711 (RFC 3551 §6).
    pub const fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// Decodes `min(payload.len(), out.len())` codes into `out` and returns that count.
    pub fn decode(self, payload: &[u8], out: &mut [i16]) -> usize {
        let table = match self {
            Codec::Pcmu => &ULAW_DECODE,
            Codec::Pcma => &ALAW_DECODE,
        };
        for (sample, &code) in out.iter_mut().zip(payload) {
            *sample = table[usize::from(code)];
        }
        payload.len().min(out.len())
    }

    /// Encodes `min(pcm.len(), out.len())` samples into `out` and returns that count.
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) -> usize {
        match self {
            Codec::Pcmu => out
                .iter_mut()
                .zip(pcm)
                .for_each(|(code, &s)| *code = ulaw_encode(s)),
            Codec::Pcma => out
                .iter_mut()
                .zip(pcm)
                .for_each(|(code, &s)| *code = alaw_encode(s)),
        }
        pcm.len().min(out.len())
    }

    /// The code of a zero sample: 0xFF for µ-law, 0xD5 for A-law.
    pub const fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }

    /// The lowercase encoding name; its uppercase form is the SDP name (RFC 3551 §6).
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "pcmu",
            Codec::Pcma => "pcma",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name given to [`Codec::from_str`] is neither `pcmu` nor `pcma`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown codec (expected pcmu or pcma)")]
pub struct UnknownCodec;

impl FromStr for Codec {
    type Err = UnknownCodec;

    /// Accepts the encoding name in any ASCII case (SDP names are case-insensitive, RFC 4566
    /// §6 `rtpmap`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Codec::ALL
            .into_iter()
            .find(|codec| s.eq_ignore_ascii_case(codec.name()))
            .ok_or(UnknownCodec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sun `g711.c` `linear2ulaw`, written out with its segment search rather than a bit scan.
    fn ulaw_encode_reference(sample: i16) -> u8 {
        const SEG_END: [i32; 8] = [0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF, 0x3FFF, 0x7FFF];
        let pcm = i32::from(sample);
        let (pcm, mask) = if pcm < 0 {
            (0x84 - pcm, 0x7F)
        } else {
            (pcm + 0x84, 0xFF)
        };
        match SEG_END.iter().position(|&end| pcm <= end) {
            None => 0x7F ^ mask,
            Some(seg) => ((seg << 4) as i32 | ((pcm >> (seg + 3)) & 0x0F)) as u8 ^ mask,
        }
    }

    /// Sun `g711.c` `linear2alaw`.
    fn alaw_encode_reference(sample: i16) -> u8 {
        const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
        let pcm = i32::from(sample) >> 3;
        let (pcm, mask) = if pcm >= 0 {
            (pcm, 0xD5)
        } else {
            (-pcm - 1, 0x55)
        };
        match SEG_END.iter().position(|&end| pcm <= end) {
            None => 0x7F ^ mask,
            Some(seg) => {
                let quant = if seg < 2 { pcm >> 1 } else { pcm >> seg } & 0x0F;
                ((seg << 4) as i32 | quant) as u8 ^ mask
            }
        }
    }

    /// G.711 decoding from the segment/mantissa definition: µ-law magnitudes are
    /// `((2m + 33) << e) - 33` in 14-bit units, A-law magnitudes `2m + 1` (segment 0) or
    /// `(2m + 33) << (e - 1)` in 13-bit units.
    fn ulaw_decode_reference(code: u8) -> i16 {
        let code = !code;
        let (e, m) = (i32::from((code >> 4) & 7), i32::from(code & 0x0F));
        let magnitude = (((2 * m + 33) << e) - 33) * 4;
        (if code & 0x80 != 0 {
            -magnitude
        } else {
            magnitude
        }) as i16
    }

    fn alaw_decode_reference(code: u8) -> i16 {
        let code = code ^ 0x55;
        let (e, m) = (i32::from((code >> 4) & 7), i32::from(code & 0x0F));
        let magnitude = if e == 0 {
            2 * m + 1
        } else {
            (2 * m + 33) << (e - 1)
        } * 8;
        (if code & 0x80 != 0 {
            magnitude
        } else {
            -magnitude
        }) as i16
    }

    /// The quantisation step of the segment a code lies in, in 16-bit units.
    fn step(codec: Codec, code: u8) -> i32 {
        match codec {
            Codec::Pcmu => 8 << ((!code >> 4) & 7),
            Codec::Pcma => 16 << ((((code ^ 0x55) >> 4) & 7).max(1) - 1),
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(ulaw_encode(0), Codec::Pcmu.silence());
        assert_eq!(alaw_encode(0), Codec::Pcma.silence());
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }

    #[test]
    fn all_codes_decode_to_reference() {
        for code in 0..=u8::MAX {
            assert_eq!(
                ulaw_decode(code),
                ulaw_decode_reference(code),
                "µ-law {code:#04x}"
            );
            assert_eq!(
                alaw_decode(code),
                alaw_decode_reference(code),
                "A-law {code:#04x}"
            );
        }
    }

    #[test]
    fn all_samples_encode_to_reference() {
        for sample in i16::MIN..=i16::MAX {
            assert_eq!(
                ulaw_encode(sample),
                ulaw_encode_reference(sample),
                "µ-law {sample}"
            );
            assert_eq!(
                alaw_encode(sample),
                alaw_encode_reference(sample),
                "A-law {sample}"
            );
        }
    }

    #[test]
    fn decode_of_encode_is_within_one_step() {
        for sample in i16::MIN..=i16::MAX {
            for codec in [Codec::Pcmu, Codec::Pcma] {
                let (mut code, mut pcm) = ([0], [0]);
                codec.encode(&[sample], &mut code);
                codec.decode(&code, &mut pcm);
                let error = (i32::from(pcm[0]) - i32::from(sample)).abs();
                assert!(
                    error <= step(codec, code[0]),
                    "{codec} {sample} -> {} -> {}",
                    code[0],
                    pcm[0]
                );
            }
        }
    }

    #[test]
    fn encode_of_decode_is_identity() {
        for code in 0..=u8::MAX {
            // µ-law has two zeros, +0 (0xFF) and -0 (0x7F); a linear 0 can only encode as +0.
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(
                ulaw_encode(ulaw_decode(code)),
                expected,
                "µ-law {code:#04x}"
            );
            assert_eq!(alaw_encode(alaw_decode(code)), code, "A-law {code:#04x}");
        }
    }

    #[test]
    fn codec_slices_stop_at_the_shorter() {
        let mut pcm = [1i16; 4];
        assert_eq!(Codec::Pcmu.decode(&[0xFF, 0x80], &mut pcm), 2);
        assert_eq!(pcm, [0, 32124, 1, 1]);
        let mut out = [0u8; 1];
        assert_eq!(Codec::Pcma.encode(&[0, 0, 0], &mut out), 1);
        assert_eq!(out, [0xD5]);
    }

    #[test]
    fn names_and_payload_types() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            assert_eq!(Codec::from_payload_type(codec.payload_type()), Some(codec));
            assert_eq!(codec.name().parse(), Ok(codec));
            assert_eq!(codec.name().to_ascii_uppercase().parse(), Ok(codec));
        }
        assert_eq!(Codec::from_payload_type(18), None);
        assert_eq!("g729".parse::<Codec>(), Err(UnknownCodec));
        assert_eq!("".parse::<Codec>(), Err(UnknownCodec));
    }
}
