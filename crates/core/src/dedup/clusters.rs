//! Near-duplicate grouping: every pair under a distance threshold, connected into clusters, with
//! a suggestion of which file of each cluster to keep. Nothing here touches the files.

use serde::{Deserialize, Serialize};

/// What is known of one file for choosing the one to keep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileInfo {
    pub path: String,
    pub pixels: u64,
    pub bytes: u64,
}

/// A group of files linked by near-duplicate pairs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// The files, the one to keep first, then by path.
    pub files: Vec<String>,
    /// The suggested file to keep: the caller's rule ([`KeepRule`]; `dupes` uses
    /// [`crate::dedup::keep`]), among the library's files in library mode.
    pub keep: String,
    /// The largest distance among the pairs that linked the cluster.
    pub max_distance: f64,
    /// Library mode ([`library_clusters`]): the cluster's files that are already in the library
    /// (the others are new). Empty, and left out of JSON, otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub library: Vec<String>,
    /// Each file's distance to the keep, in `files`' order (0 for the keep), when the search
    /// filled it in ([`Cluster::with_distances`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distances: Vec<f64>,
    /// Sets of byte-identical files within the cluster (same size and sha256; [`identical_groups`]),
    /// each sorted by path; empty, and left out of JSON, when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identical: Vec<Vec<String>>,
}

/// The sets (≥ 2 files, sorted by path; sets ordered by their first path) of byte-identical files
/// among `paths`: grouped by size first, then by the sha256 of the content. A file that cannot be
/// read is in no set.
pub fn identical_groups(paths: &[String]) -> Vec<Vec<String>> {
    use std::collections::BTreeMap;
    let mut by_size: BTreeMap<u64, Vec<&String>> = BTreeMap::new();
    for p in paths {
        if let Ok(m) = std::fs::metadata(p) {
            by_size.entry(m.len()).or_default().push(p);
        }
    }
    let mut out: Vec<Vec<String>> = Vec::new();
    for same_size in by_size.into_values().filter(|v| v.len() > 1) {
        let mut by_hash: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for p in same_size {
            if let Ok(h) = crate::fsutil::sha256_file(&crate::fsutil::text_path_or_same(p)) {
                by_hash.entry(h).or_default().push(p.clone());
            }
        }
        out.extend(by_hash.into_values().filter(|v| v.len() > 1).map(|mut v| {
            v.sort();
            v
        }));
    }
    out.sort();
    out
}

impl Cluster {
    /// Fills [`Cluster::distances`] from `distance(keep index, file index)`, files named by their
    /// index in `paths`.
    pub fn with_distances(mut self, index_of: &dyn Fn(&str) -> usize, distance: &dyn Fn(usize, usize) -> f64) -> Self {
        let k = index_of(&self.keep);
        self.distances =
            self.files.iter().map(|f| if *f == self.keep { 0.0 } else { distance(k, index_of(f)) }).collect();
        self
    }
}

/// Every pair `(i, j, d)` with `i < j` and `d = distance(i, j) ≤ threshold`, for `n` items, in
/// parallel over `i`. Exact (all pairs).
pub fn pairs_under(
    n: usize,
    threshold: f64,
    distance: &(dyn Fn(usize, usize) -> f64 + Sync),
) -> Vec<(usize, usize, f64)> {
    pairs_touching(n, n, threshold, distance)
}

/// Like [`pairs_under`], but only the pairs with `i < first` (`i < j`): items `0..first` are new,
/// `first..n` a library that is not compared with itself. `first = n`: every pair.
pub fn pairs_touching(
    n: usize,
    first: usize,
    threshold: f64,
    distance: &(dyn Fn(usize, usize) -> f64 + Sync),
) -> Vec<(usize, usize, f64)> {
    use rayon::prelude::*;
    (0..first.min(n))
        .into_par_iter()
        .flat_map_iter(|i| {
            (i + 1..n).filter_map(move |j| {
                let d = distance(i, j);
                (d <= threshold).then_some((i, j, d))
            })
        })
        .collect()
}

/// Each of `n` items' component under single linkage of `pairs`, named by its smallest member.
pub fn components(n: usize, pairs: &[(usize, usize, f64)]) -> Vec<usize> {
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut parent: Vec<usize> = (0..n).collect();
    for &(i, j, _) in pairs {
        let (a, b) = (find(&mut parent, i), find(&mut parent, j));
        parent[a.max(b)] = a.min(b);
    }
    (0..n).map(|i| find(&mut parent, i)).collect()
}

/// How a cluster's keep is chosen: given the candidates (the library's files of the cluster in
/// library mode, else all of them) and all its members (indices into the files), the index of the
/// file to keep, one of the candidates. Called in parallel, once per cluster.
pub type KeepRule<'a> = dyn Fn(&[usize], &[usize]) -> usize + Sync + 'a;

/// Connected components of the pairs (single linkage), largest first, then by first path; each
/// with its keep by `keep`.
pub fn clusters(files: &[FileInfo], pairs: &[(usize, usize, f64)], keep: &KeepRule<'_>) -> Vec<Cluster> {
    grouped(files, pairs, files.len(), keep)
}

/// Library mode: `files[..first]` are new, `files[first..]` the library, and `pairs` come from
/// [`pairs_touching`] with the same `first`. Every cluster holds a new file (a library file
/// joins one only through a new file); [`Cluster::library`] lists its library files, and the
/// keep is one of them when there are any (what is already kept stays).
pub fn library_clusters(
    files: &[FileInfo],
    pairs: &[(usize, usize, f64)],
    first: usize,
    keep: &KeepRule<'_>,
) -> Vec<Cluster> {
    grouped(files, pairs, first, keep)
}

/// [`clusters`] with `files[first..]` marked as the library.
fn grouped(files: &[FileInfo], pairs: &[(usize, usize, f64)], first: usize, keep: &KeepRule<'_>) -> Vec<Cluster> {
    use rayon::prelude::*;
    let root = components(files.len(), pairs);
    let mut members: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    let mut max_d: std::collections::HashMap<usize, f64> = Default::default();
    for &(i, _, d) in pairs {
        let e = max_d.entry(root[i]).or_insert(0.0);
        *e = e.max(d);
    }
    for (i, &r) in root.iter().enumerate() {
        members.entry(r).or_default().push(i);
    }
    let groups: Vec<(usize, Vec<usize>)> = members.into_iter().filter(|(_, m)| m.len() > 1).collect();
    let mut out: Vec<Cluster> = groups
        .into_par_iter()
        .map(|(root, m)| {
            let in_library: Vec<usize> = m.iter().copied().filter(|&i| i >= first).collect();
            let keep = keep(if in_library.is_empty() { &m } else { &in_library }, &m);
            let mut paths: Vec<String> = m.iter().filter(|&&i| i != keep).map(|&i| files[i].path.clone()).collect();
            paths.sort();
            paths.insert(0, files[keep].path.clone());
            let mut library: Vec<String> = in_library.iter().map(|&i| files[i].path.clone()).collect();
            library.sort();
            Cluster {
                keep: files[keep].path.clone(),
                files: paths,
                max_distance: max_d.get(&root).copied().unwrap_or(0.0),
                library,
                distances: Vec::new(),
                identical: Vec::new(),
            }
        })
        .collect();
    out.sort_by(|a, b| b.files.len().cmp(&a.files.len()).then(a.files[0].cmp(&b.files[0])));
    out
}

/// Precision and recall of predicted clusters against true groups, over pairs: a pair of files is
/// predicted a duplicate when they share a cluster, truly one when they share a group label.
pub fn pair_precision_recall(
    clusters: &[Cluster],
    label_of: &dyn Fn(&str) -> Option<String>,
    all_paths: &[String],
) -> (f64, f64) {
    use std::collections::HashMap;
    let mut groups: HashMap<String, usize> = HashMap::new();
    for p in all_paths {
        if let Some(l) = label_of(p) {
            *groups.entry(l).or_default() += 1;
        }
    }
    let true_pairs: usize = groups.values().map(|&k| k * (k - 1) / 2).sum();
    let (mut predicted, mut correct) = (0usize, 0usize);
    for c in clusters {
        let labels: Vec<Option<String>> = c.files.iter().map(|p| label_of(p)).collect();
        for i in 0..labels.len() {
            for j in i + 1..labels.len() {
                predicted += 1;
                if labels[i].is_some() && labels[i] == labels[j] {
                    correct += 1;
                }
            }
        }
    }
    let precision = if predicted == 0 { 1.0 } else { correct as f64 / predicted as f64 };
    let recall = if true_pairs == 0 { 1.0 } else { correct as f64 / true_pairs as f64 };
    (precision, recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(path: &str, pixels: u64, bytes: u64) -> FileInfo {
        FileInfo { path: path.into(), pixels, bytes }
    }

    /// A keep rule for these tests: the most pixels, then the largest file, then the first path.
    fn by_size(files: &[FileInfo]) -> impl Fn(&[usize], &[usize]) -> usize + Sync + '_ {
        move |candidates, _| {
            *candidates
                .iter()
                .max_by(|&&a, &&b| {
                    (files[a].pixels, files[a].bytes)
                        .cmp(&(files[b].pixels, files[b].bytes))
                        .then(files[b].path.cmp(&files[a].path))
                })
                .expect("a cluster has files")
        }
    }

    #[test]
    fn pairs_link_into_clusters_and_the_largest_file_is_kept() {
        // Points on a line: 0, 0.1, 0.15 | 5 | 9, 9.05
        let x: [f64; 6] = [0.0, 0.1, 0.15, 5.0, 9.0, 9.05];
        let pairs = pairs_under(x.len(), 0.12, &|i, j| (x[i] - x[j]).abs());
        assert_eq!(pairs.len(), 3, "{pairs:?}"); // (0,1) (1,2) (4,5); 0–2 is 0.15 > 0.12
        let files = vec![
            info("a.jpg", 100, 10),
            info("b.png", 400, 5),
            info("c.jpg", 400, 9),
            info("d.jpg", 1, 1),
            info("e.jpg", 50, 50),
            info("f.jpg", 50, 60),
        ];
        let c = clusters(&files, &pairs, &by_size(&files));
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].files, vec!["c.jpg", "a.jpg", "b.png"]);
        assert_eq!(c[0].keep, "c.jpg");
        assert!((c[0].max_distance - 0.1).abs() < 1e-12);
        assert_eq!(c[1].keep, "f.jpg");
        // Pairwise precision/recall against labels by the first letter group.
        let label = |p: &str| {
            Some(if "abc".contains(&p[..1]) {
                "x".to_string()
            } else if "ef".contains(&p[..1]) {
                "y".into()
            } else {
                p.into()
            })
        };
        let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
        assert_eq!(pair_precision_recall(&c, &label, &paths), (1.0, 1.0));
        let partial = vec![c[0].clone()];
        let (p, r) = pair_precision_recall(&partial, &label, &paths);
        assert_eq!((p, r), (1.0, 0.75));
        assert!(c.iter().all(|c| c.library.is_empty()), "no library outside library mode");
    }

    #[test]
    fn identical_files_are_grouped_by_content_not_name_or_size_alone() {
        let dir = tempfile::tempdir().unwrap();
        let w = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p.to_str().unwrap().to_string()
        };
        let (a, b, c) = (w("a.jpg", b"same bytes"), w("b.png", b"same bytes"), w("c.jpg", b"same bytez"));
        let (d, e) = (w("d.jpg", b"other"), w("e.jpg", b"other"));
        let gone = dir.path().join("gone.jpg").to_str().unwrap().to_string();
        let groups = identical_groups(&[c.clone(), e.clone(), b.clone(), a.clone(), d.clone(), gone]);
        // c has the same size as a and b but other bytes; the missing file is in no set.
        assert_eq!(groups, vec![vec![a, b], vec![d, e]]);
        assert!(identical_groups(&[c]).is_empty());
    }

    #[test]
    fn library_mode_reports_only_clusters_with_a_new_file_and_keeps_the_library_s() {
        // New: n0 at 0, n1 at 9.02. Library: l0 at 0.05, l1 at 0.1 (a library duplicate of l0),
        // l2 at 5, l3 at 20 and l4 at 20.01 (a duplicate pair inside the library, no new file).
        let x: [f64; 7] = [0.0, 9.02, 0.05, 0.1, 5.0, 20.0, 20.01];
        let pairs = pairs_touching(x.len(), 2, 0.12, &|i, j| (x[i] - x[j]).abs());
        // n0–l0, n0–l1; n1 matches nothing; l0–l1 and l3–l4 are never compared.
        assert_eq!(pairs.iter().map(|&(i, j, _)| (i, j)).collect::<Vec<_>>(), vec![(0, 2), (0, 3)]);
        assert_eq!(pairs_touching(x.len(), x.len(), 0.12, &|i, j| (x[i] - x[j]).abs()).len(), 4);
        let files = vec![
            info("new/a.jpg", 900, 90),
            info("new/b.jpg", 10, 10),
            info("lib/a.jpg", 100, 10),
            info("lib/a-copy.jpg", 200, 10),
            info("lib/c.jpg", 1, 1),
            info("lib/d.jpg", 1, 1),
            info("lib/d2.jpg", 1, 1),
        ];
        let c = library_clusters(&files, &pairs, 2, &by_size(&files));
        assert_eq!(c.len(), 1, "{c:?}");
        // The new file has more pixels, but the library's largest copy is the keep.
        assert_eq!(c[0].keep, "lib/a-copy.jpg");
        assert_eq!(c[0].files, vec!["lib/a-copy.jpg", "lib/a.jpg", "new/a.jpg"]);
        assert_eq!(c[0].library, vec!["lib/a-copy.jpg", "lib/a.jpg"]);
        // Two new files alike with no library match: a cluster of new files, keep by the usual rule.
        let y: [f64; 3] = [0.0, 0.01, 7.0];
        let pairs = pairs_touching(3, 2, 0.12, &|i, j| (y[i] - y[j]).abs());
        let c = library_clusters(&files[..3], &pairs, 2, &by_size(&files[..3]));
        assert_eq!((c.len(), c[0].keep.as_str(), c[0].library.len()), (1, "new/a.jpg", 0));
    }
}
