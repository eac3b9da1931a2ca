//! Near-duplicate pairs at scale: candidate pairs from indexes instead of every pair, each then
//! checked with the full descriptor distance ([`Descriptors::distance`]).
//!
//! - **Vectors** (a model's, alone or fused): an HNSW graph over every item
//!   ([`VectorIndex`](crate::dedup::index::VectorIndex), usearch); each queried item's `k` nearest under the L2 threshold are
//!   candidates. Approximate: a pair is missed when neither item has the other among its `k`
//!   nearest in the graph (a group larger than `k`, or a graph miss); single linkage usually
//!   still joins such a group through other pairs. Measured against exact in the README.
//! - **Hashes** (alone or fused): multi-index hashing, exact. The 64 bits are cut into four
//!   16-bit chunks; two hashes at most `B` bits apart agree on some chunk to within `B / 4` bits
//!   (pigeonhole), so each item looks up, per chunk, the buckets of every value that close to its
//!   own, and every hash pair within `B` bits is found.
//!
//! Memory: the vectors (the caller's), the graph (about 2 × `dim` bytes per item with f16
//! storage, plus its links), four bucket tables of `u32` item numbers, and the pairs found.

use rayon::prelude::*;

use crate::dedup::index::IndexConfig;
use crate::error::{Error, Result};
use crate::eval::embed::Descriptors;
use crate::image::hash::PerceptualHash;

/// Neighbours asked of the graph per item: a near-duplicate group larger than this is joined
/// through chains of pairs rather than every pair.
pub const DEFAULT_K: usize = 32;
/// The largest Hamming threshold the hash buckets serve (four chunks, three bits each): beyond
/// it the probes per chunk grow past a thousand and exact search is the better tool.
pub const MAX_INDEXED_BITS: u32 = 15;

/// The Hamming radius in bits that `threshold` means for `desc`'s hashes: the threshold itself
/// for hashes alone, `threshold / l2_per_bit` when fused (a hash brings a pair under the threshold
/// only at `l2_per_bit · bits ≤ threshold`); `None` when no hash can find a pair.
fn hash_radius(desc: &Descriptors, threshold: f64) -> Option<f64> {
    match desc {
        Descriptors::Hashes(_) => Some(threshold),
        Descriptors::Fused { rule, .. } if rule.l2_per_bit > 0.0 => Some(threshold / rule.l2_per_bit),
        _ => None,
    }
}

/// Whether [`pairs_indexed`] can search `desc` at `threshold`: not with regions, and not with a
/// hash radius above [`MAX_INDEXED_BITS`].
pub fn indexable(desc: &Descriptors, threshold: f64) -> bool {
    let regions = match desc {
        Descriptors::Regions { .. } => true,
        Descriptors::Fused { vectors, .. } => matches!(vectors.as_ref(), Descriptors::Regions { .. }),
        _ => false,
    };
    !regions && hash_radius(desc, threshold).is_none_or(|bits| bits.floor() <= MAX_INDEXED_BITS as f64)
}

/// Every pair `(i, j, d)`, `i < j`, `i < first`, with `d = desc.distance(i, j) ≤ threshold`
/// that the indexes propose (see the module): vectors by the HNSW graph's `k` nearest of each
/// item `0..first`, hashes by multi-index hashing. Items `first..` (a library) are not queried,
/// so library pairs are not looked for. Sorted by `(i, j)`. Where [`indexable`] says no, an
/// error: use exact search.
pub fn pairs_indexed(
    desc: &Descriptors,
    n: usize,
    first: usize,
    threshold: f64,
    k: usize,
) -> Result<Vec<(usize, usize, f64)>> {
    if !indexable(desc, threshold) {
        return Err(Error::Invalid(format!(
            "indexed search: not for regions or hash thresholds above {MAX_INDEXED_BITS} bits; search exactly"
        )));
    }
    let first = first.min(n);
    let (vectors, hashes) = match desc {
        Descriptors::Vectors { .. } => (Some(desc), None),
        Descriptors::Hashes(h) => (None, Some(h)),
        Descriptors::Fused { vectors, hashes, .. } => (Some(vectors.as_ref()), Some(hashes)),
        Descriptors::Regions { .. } => unreachable!("not indexable"),
    };
    let mut candidates: Vec<(usize, usize)> = Vec::new();
    if let Some(Descriptors::Vectors { dim, data }) = vectors {
        candidates.extend(vector_candidates(data, *dim, first, threshold, k)?);
    }
    if let (Some(h), Some(bits)) = (hashes, hash_radius(desc, threshold)) {
        candidates.extend(hash_pairs(h, first, bits)?);
    }
    candidates.par_sort_unstable();
    candidates.dedup();
    Ok(candidates
        .into_par_iter()
        .filter_map(|(i, j)| {
            let d = desc.distance(i, desc, j);
            (d <= threshold).then_some((i, j, d))
        })
        .collect())
}

/// Pairs `(min, max)` with `min < first` among each item `0..first`'s `k` nearest in an HNSW
/// graph of all items whose (approximate, f16) distance is within `threshold` (with a 2 % margin:
/// the caller checks the exact distance).
fn vector_candidates(data: &[f32], dim: usize, first: usize, threshold: f64, k: usize) -> Result<Vec<(usize, usize)>> {
    let n = data.len() / dim.max(1);
    if n < 2 || first == 0 {
        return Ok(Vec::new());
    }
    let index = IndexConfig::new(dim).init()?;
    let keys: Vec<u64> = (0..n as u64).collect();
    index.add_batch(&keys, data, rayon::current_num_threads())?;
    let limit = (threshold * 1.02 + 1e-6) as f32;
    let found: Result<Vec<Vec<(usize, usize)>>> = (0..first)
        .into_par_iter()
        .map(|i| {
            let near = index.search(&data[i * dim..(i + 1) * dim], k + 1)?;
            Ok(near
                .into_iter()
                .filter(|nb| nb.distance <= limit && nb.key as usize != i)
                .map(|nb| {
                    let j = nb.key as usize;
                    (i.min(j), i.max(j))
                })
                .filter(|&(a, _)| a < first)
                .collect())
        })
        .collect();
    Ok(found?.into_iter().flatten().collect())
}

/// The 64 bits of a hash (the first 8 bytes; shorter hashes zero-padded).
fn bits_of(h: &PerceptualHash) -> u64 {
    let b = h.to_bytes();
    let mut w = [0u8; 8];
    let n = b.len().min(8);
    w[..n].copy_from_slice(&b[..n]);
    u64::from_le_bytes(w)
}

/// Every 16-bit value within `r` bits of 0 (the flip masks), for `r ≤ 3`.
fn flip_masks(r: u32) -> Vec<u16> {
    let mut masks = vec![0u16];
    for a in 0..16 {
        if r >= 1 {
            masks.push(1 << a);
        }
        for b in a + 1..16 {
            if r >= 2 {
                masks.push(1 << a | 1 << b);
            }
            for c in b + 1..16 {
                if r >= 3 {
                    masks.push(1 << a | 1 << b | 1 << c);
                }
            }
        }
    }
    masks
}

/// Pairs `(i, j)`, `i < j`, `i < first`, whose hashes are at most `radius` bits apart (its
/// floor; above [`MAX_INDEXED_BITS`] an error), by multi-index hashing (exact; see the module).
/// Unsorted; a pair may repeat.
pub fn hash_pairs(hashes: &[PerceptualHash], first: usize, radius: f64) -> Result<Vec<(usize, usize)>> {
    let bits = radius.max(0.0).floor();
    if bits > MAX_INDEXED_BITS as f64 {
        return Err(Error::Invalid(format!(
            "indexed search serves hash thresholds up to {MAX_INDEXED_BITS} bits, not {bits}; search exactly"
        )));
    }
    let bits = bits as u32;
    let words: Vec<u64> = hashes.par_iter().map(bits_of).collect();
    let chunk = |w: u64, c: usize| (w >> (16 * c)) as u16;
    // Per chunk: item numbers sorted by the chunk's value, and where each value's run starts.
    let tables: Vec<(Vec<u32>, Vec<u32>)> = (0..4)
        .into_par_iter()
        .map(|c| {
            let mut counts = vec![0u32; 65537];
            for &w in &words {
                counts[chunk(w, c) as usize + 1] += 1;
            }
            for v in 1..counts.len() {
                counts[v] += counts[v - 1];
            }
            let mut at = counts.clone();
            let mut items = vec![0u32; words.len()];
            for (i, &w) in words.iter().enumerate() {
                let v = chunk(w, c) as usize;
                items[at[v] as usize] = i as u32;
                at[v] += 1;
            }
            (counts, items)
        })
        .collect();
    let masks = flip_masks(bits / 4);
    Ok((0..first.min(words.len()))
        .into_par_iter()
        .flat_map_iter(|i| {
            let w = words[i];
            let mut out = Vec::new();
            for (c, (starts, items)) in tables.iter().enumerate() {
                for &m in &masks {
                    let v = (chunk(w, c) ^ m) as usize;
                    for &j in &items[starts[v] as usize..starts[v + 1] as usize] {
                        let j = j as usize;
                        if j > i && (w ^ words[j]).count_ones() <= bits {
                            out.push((i, j));
                        }
                    }
                }
            }
            out
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::clusters::pairs_touching;
    use crate::dedup::index_bench::{Synthetic, synthetic};
    use crate::eval::fusion::FuseRule;
    use rand::{Rng, SeedableRng};

    fn hashes(n: usize, seed: u64) -> Vec<PerceptualHash> {
        // Groups of 4 around random words, members 0–6 bits away from their group's word.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::new();
        let mut base = 0u64;
        for i in 0..n {
            if i % 4 == 0 {
                base = rng.random();
            }
            let mut w = base;
            for _ in 0..rng.random_range(0..=6) {
                w ^= 1 << rng.random_range(0..64);
            }
            out.push(PerceptualHash::from_bytes(&w.to_le_bytes()).unwrap());
        }
        out
    }

    #[test]
    fn flip_masks_count_the_values_within_r_bits() {
        assert_eq!(flip_masks(0).len(), 1);
        assert_eq!(flip_masks(1).len(), 17);
        assert_eq!(flip_masks(2).len(), 1 + 16 + 120);
        assert_eq!(flip_masks(3).len(), 1 + 16 + 120 + 560);
        assert!(flip_masks(3).iter().all(|m| m.count_ones() <= 3));
    }

    /// Hash pairs are exact: the same pairs as comparing every pair, at every threshold served.
    #[test]
    fn hash_pairs_match_exact_search() {
        let h = hashes(3000, 3);
        let desc = Descriptors::Hashes(h);
        for bits in [0.0, 4.0, 9.0, 15.0] {
            let exact = pairs_touching(3000, 3000, bits, &|i, j| desc.distance(i, &desc, j));
            let mut exact = exact;
            exact.sort_by_key(|&(i, j, _)| (i, j));
            let found = pairs_indexed(&desc, 3000, 3000, bits, DEFAULT_K).unwrap();
            assert_eq!(found, exact, "{bits} bits");
            assert!(bits < 4.0 || found.len() > 1000, "{bits}: {}", found.len());
        }
        // Library mode: only pairs touching the first 500.
        let found = pairs_indexed(&desc, 3000, 500, 9.0, DEFAULT_K).unwrap();
        let mut exact = pairs_touching(3000, 500, 9.0, &|i, j| desc.distance(i, &desc, j));
        exact.sort_by_key(|&(i, j, _)| (i, j));
        assert_eq!(found, exact);
        assert!(pairs_indexed(&desc, 3000, 3000, 16.0, DEFAULT_K).unwrap_err().to_string().contains("exactly"));
        assert!(indexable(&desc, 15.9) && !indexable(&desc, 16.0));
    }

    /// Vectors: nearly every exact pair is found (groups of 16 fit in k = 32), none that is not
    /// one; fused with hashes, the hash-only pairs are found too.
    #[test]
    fn vector_and_fused_pairs_recall_the_exact_ones() {
        let (n, dim) = (4000, 32);
        let (data, _) = synthetic(Synthetic::Clustered, n, 0, dim, 5);
        let vectors = Descriptors::Vectors { dim, data };
        let t = 0.45;
        let exact = pairs_touching(n, n, t, &|i, j| vectors.distance(i, &vectors, j));
        let found = pairs_indexed(&vectors, n, n, t, DEFAULT_K).unwrap();
        assert!(exact.len() > 5000, "{}", exact.len());
        let set: std::collections::HashSet<(usize, usize)> = exact.iter().map(|&(i, j, _)| (i, j)).collect();
        assert!(found.iter().all(|&(i, j, d)| set.contains(&(i, j)) && d <= t));
        let recall = found.len() as f64 / exact.len() as f64;
        assert!(recall > 0.98, "{recall}");
        let fused = Descriptors::fuse(vectors, hashes(n, 9), FuseRule { l2_per_bit: 0.05, l2_cap: 2.0 });
        let exact = pairs_touching(n, n, t, &|i, j| fused.distance(i, &fused, j));
        let found = pairs_indexed(&fused, n, n, t, DEFAULT_K).unwrap();
        assert!(exact.len() > set.len() + 1000, "hash pairs add: {} vs {}", exact.len(), set.len());
        assert!(found.len() as f64 / exact.len() as f64 > 0.98, "{} of {}", found.len(), exact.len());
        // At 1.0 the fused hash radius is 20 bits: beyond the buckets, so not indexable.
        assert!(indexable(&fused, t) && !indexable(&fused, 1.0));
    }
}
