//! Perceptual hashes (the near-duplicate baselines), through the `image_hasher` crate, all
//! 64-bit and compared by Hamming distance.
//!
//! | name        | image_hasher setting            | idea                                          |
//! |-------------|---------------------------------|-----------------------------------------------|
//! | `phash`     | `Median` + `preproc_dct`        | signs of low DCT frequencies vs their median  |
//! | `dhash`     | `Gradient`                      | signs of horizontal neighbour differences     |
//! | `ahash`     | `Mean`                          | 8×8 thumbnail pixels vs their mean            |
//! | `blockhash` | `Blockhash`                     | block means vs the median (blockhash.io)      |

use std::fmt;
use std::str::FromStr;

use image_hasher::{HashAlg, Hasher, HasherConfig, ImageHash};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::image::Image;

/// A perceptual-hash algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashKind {
    Phash,
    Dhash,
    Ahash,
    Blockhash,
}

impl HashKind {
    pub const ALL: [HashKind; 4] = [HashKind::Phash, HashKind::Dhash, HashKind::Ahash, HashKind::Blockhash];

    pub fn name(self) -> &'static str {
        match self {
            HashKind::Phash => "phash",
            HashKind::Dhash => "dhash",
            HashKind::Ahash => "ahash",
            HashKind::Blockhash => "blockhash",
        }
    }

    /// A reusable hasher (8×8 = 64 bits).
    pub fn hasher(self) -> Hasher {
        let c = HasherConfig::new().hash_size(8, 8);
        match self {
            HashKind::Phash => c.hash_alg(HashAlg::Median).preproc_dct(),
            HashKind::Dhash => c.hash_alg(HashAlg::Gradient),
            HashKind::Ahash => c.hash_alg(HashAlg::Mean),
            HashKind::Blockhash => c.hash_alg(HashAlg::Blockhash),
        }
        .to_hasher()
    }
}

impl fmt::Display for HashKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        HashKind::ALL
            .into_iter()
            .find(|k| k.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| Error::Invalid(format!("unknown hash `{s}` (expected phash, dhash, ahash or blockhash)")))
    }
}

/// A 64-bit perceptual hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerceptualHash(ImageHash);

impl PerceptualHash {
    /// Hashes `img` with `hasher` (from [`HashKind::hasher`]).
    pub fn of(hasher: &Hasher, img: &Image) -> Self {
        PerceptualHash(hasher.hash_image(&img.to_dynamic()))
    }

    /// Hamming distance in bits (0…64).
    pub fn distance(&self, other: &Self) -> u32 {
        self.0.dist(&other.0)
    }

    /// The hash's bits as bytes (what the embedding cache stores).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.as_bytes().to_vec()
    }

    /// The hash's bytes in lower-case hex (what an index manifest stores).
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    /// A hash from [`PerceptualHash::to_hex`]; `None` for text that is not one.
    pub fn from_hex(text: &str) -> Option<Self> {
        hex::decode(text).ok().and_then(|b| Self::from_bytes(&b))
    }

    /// A hash from [`PerceptualHash::to_bytes`]; `None` for bytes that are not one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        ImageHash::from_bytes(bytes).ok().map(PerceptualHash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distort::Distortion;
    use crate::image::Channels;

    fn texture(seed: u32) -> Image {
        let (w, h) = (96u32, 96u32);
        let data = (0..w * h * 3)
            .map(|i| {
                let (p, c) = (i / 3, i % 3);
                let (x, y) = (p % w, p / w);
                (((x * (3 + seed) + y * (5 + c)) ^ (x * y / (7 + seed))) % 256) as u8
            })
            .collect();
        Image::new(w, h, Channels::Rgb, data).unwrap()
    }

    #[test]
    fn hashes_are_stable_under_light_jpeg_and_differ_between_images() {
        let a = texture(1);
        let b = texture(9);
        let a_jpeg = Distortion::Jpeg { quality: 90 }.apply(&a, 0).unwrap();
        for kind in HashKind::ALL {
            let h = kind.hasher();
            let (ha, hb, hj) =
                (PerceptualHash::of(&h, &a), PerceptualHash::of(&h, &b), PerceptualHash::of(&h, &a_jpeg));
            assert_eq!(ha.distance(&ha), 0);
            assert!(ha.distance(&hj) <= 6, "{kind}: jpeg:90 moved {} bits", ha.distance(&hj));
            assert!(
                ha.distance(&hb) > ha.distance(&hj),
                "{kind}: distinct {} vs dup {}",
                ha.distance(&hb),
                ha.distance(&hj)
            );
            assert!(ha.distance(&hb) <= 64);
        }
    }

    #[test]
    fn names_parse() {
        for k in HashKind::ALL {
            assert_eq!(k.name().parse::<HashKind>().unwrap(), k);
        }
        assert_eq!(" PHash".parse::<HashKind>().unwrap(), HashKind::Phash);
        assert!("md5".parse::<HashKind>().is_err());
    }
}
