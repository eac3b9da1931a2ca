//! The review page of a near-duplicate search (`stabilize dupes --html PAGE`): one self-contained
//! HTML file (no network: thumbnails are inline JPEG data URIs, the style is inline) that shows each
//! cluster's files side by side with their size, format, dimensions and distance to the suggested
//! keep, the keep marked, and the least certain clusters first (the largest linking distance, the
//! nearest to the threshold), so a person decides where the search is least sure.

use base64::Engine as _;

use crate::dedup::Cluster;
use crate::image::load::{LoadOptions, load_image_with};
use crate::image::resize::{Filter, resize};
use crate::{Error, Image, Result};

/// Longest side of a thumbnail on the page, px.
pub const THUMB_SIDE: u32 = 200;

/// What the page shows of one file.
#[derive(Clone, Debug)]
pub struct ReviewFile {
    pub path: String,
    /// Pixel size as decoded (EXIF-rotated), or `None` when it can no longer be read.
    pub size: Option<(u32, u32)>,
    pub bytes: Option<u64>,
    /// The format named by the file's first bytes (`JPEG`, `PNG`, …), else its extension.
    pub format: String,
    /// Distance to the cluster's keep (0 for the keep itself), when known.
    pub distance: Option<f64>,
    /// A JPEG data URI of the thumbnail (at most [`THUMB_SIDE`] px), or `None` if unreadable.
    pub thumb: Option<String>,
}

/// Reads what the page shows of `path`: its size, format and thumbnail. An unreadable file is
/// still shown, with its path and why (in `format`).
pub fn review_file(path: &str, distance: Option<f64>) -> ReviewFile {
    let p = &crate::fsutil::text_path_or_same(path);
    let bytes = std::fs::metadata(p).ok().map(|m| m.len());
    let format = std::fs::read(p)
        .ok()
        .and_then(|b| image::guess_format(&b).ok())
        .map(|f| format!("{f:?}").to_uppercase())
        .or_else(|| p.extension().map(|e| e.to_string_lossy().to_uppercase()))
        .unwrap_or_else(|| "?".into());
    match load_image_with(p, &LoadOptions::default()) {
        Ok(img) => ReviewFile {
            path: path.into(),
            size: Some((img.width(), img.height())),
            bytes,
            format,
            distance,
            thumb: thumbnail_uri(&img).ok(),
        },
        Err(e) => ReviewFile {
            path: path.into(),
            size: None,
            bytes,
            format: format!("{format} (unreadable: {e})"),
            distance,
            thumb: None,
        },
    }
}

/// `img` scaled to fit [`THUMB_SIDE`] (never enlarged), as a JPEG data URI (quality 85).
pub fn thumbnail_uri(img: &Image) -> Result<String> {
    let img = img.to_rgb();
    let scale = (THUMB_SIDE as f64 / img.width().max(img.height()) as f64).min(1.0);
    let (w, h) =
        (((img.width() as f64 * scale).round() as u32).max(1), ((img.height() as f64 * scale).round() as u32).max(1));
    let small = resize(&img, w, h, Filter::Bicubic)?;
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode(small.data(), w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| Error::Invalid(format!("thumbnail: {e}")))?;
    Ok(format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(out)))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.0} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// The order clusters appear on the page: least certain first (largest linking distance), then
/// as the search listed them.
pub fn review_order(clusters: &[Cluster]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..clusters.len()).collect();
    idx.sort_by(|&a, &b| clusters[b].max_distance.total_cmp(&clusters[a].max_distance).then(a.cmp(&b)));
    idx
}

/// The page for `clusters` (with `files[k]` = what to show of `clusters[k].files`, in order),
/// found by `method` at `threshold`. Cluster `k` of the search is the element `id="cluster-{k+1}"`.
pub fn review_html(clusters: &[Cluster], files: &[Vec<ReviewFile>], method: &str, threshold: f64) -> String {
    assert_eq!(clusters.len(), files.len(), "one list of files per cluster");
    let mut h = String::new();
    h.push_str(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>stabilize dupes: review</title><style>",
    );
    h.push_str(
        "body{font-family:sans-serif;margin:1.5em;color:#222;background:#fafafa}\
         section.cluster{background:#fff;border:1px solid #ccc;border-radius:6px;margin:1em 0;padding:.6em 1em}\
         section.cluster h2{font-size:1.05em;margin:.2em 0 .6em}\
         .files{display:flex;flex-wrap:wrap;gap:12px}\
         figure{margin:0;width:210px;border:3px solid #ddd;border-radius:4px;padding:4px;background:#fff}\
         figure.keep{border-color:#1a7f37;background:#eefbf0}\
         figure img{display:block;max-width:200px;max-height:200px;margin:auto}\
         figcaption{font-size:.78em;word-break:break-all;margin-top:4px}\
         .badge{display:inline-block;font-weight:bold;font-size:.75em;padding:1px 5px;border-radius:3px;margin-right:4px;color:#fff}\
         .badge.keep{background:#1a7f37}.badge.same{background:#6e40c9}.badge.lib{background:#0550ae}.badge.new{background:#9a6700}\
         .none{width:200px;height:120px;display:flex;align-items:center;justify-content:center;background:#eee;color:#a00}\
         .uncertain{color:#b35900}",
    );
    h.push_str("</style></head><body>");
    h.push_str(&format!(
        "<h1>Near-duplicates: {} clusters, {} files</h1><p>{} · threshold {:.4} · least certain clusters first \
         (largest linking distance). The suggested file to keep is marked; nothing was moved or deleted.</p>",
        clusters.len(),
        clusters.iter().map(|c| c.files.len()).sum::<usize>(),
        esc(method),
        threshold
    ));
    for k in review_order(clusters) {
        let c = &clusters[k];
        let margin = if threshold > 0.0 { 1.0 - c.max_distance / threshold } else { 1.0 };
        let class = if margin < 0.15 { " class=\"uncertain\"" } else { "" };
        h.push_str(&format!(
            "<section class=\"cluster\" id=\"cluster-{}\"><h2{class}>Cluster {}: {} files, linked up to distance {:.4} ({:.0} % under the threshold)</h2><div class=\"files\">",
            k + 1,
            k + 1,
            c.files.len(),
            c.max_distance,
            margin * 100.0
        ));
        for f in &files[k] {
            let keep = f.path == c.keep;
            let mut badges = String::new();
            if keep {
                badges.push_str("<span class=\"badge keep\">KEEP</span>");
            }
            if c.identical.iter().any(|g| g.contains(&f.path)) {
                badges.push_str("<span class=\"badge same\">byte-identical</span>");
            }
            if !c.library.is_empty() {
                if c.library.contains(&f.path) {
                    badges.push_str("<span class=\"badge lib\">library</span>");
                } else {
                    badges.push_str("<span class=\"badge new\">new</span>");
                }
            }
            let img = match &f.thumb {
                Some(uri) => format!("<img src=\"{uri}\" alt=\"{}\">", esc(&f.path)),
                None => "<div class=\"none\">cannot be read</div>".into(),
            };
            let size = f.size.map_or("?".into(), |(w, h)| format!("{w}×{h}"));
            let bytes = f.bytes.map_or("?".into(), human_bytes);
            let dist = match f.distance {
                Some(_) if keep => String::new(),
                Some(d) => format!(" · {d:.4} from the keep"),
                None => String::new(),
            };
            h.push_str(&format!(
                "<figure{}>{img}<figcaption>{badges}<span class=\"path\" title=\"{}\">{}</span><br>{size} · {bytes} · {}{dist}</figcaption></figure>",
                if keep { " class=\"keep\"" } else { "" },
                esc(&f.path),
                esc(&f.path),
                esc(&f.format)
            ));
        }
        h.push_str("</div></section>");
    }
    h.push_str("</body></html>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Channels;

    fn cluster(files: &[&str], keep: &str, d: f64) -> Cluster {
        Cluster {
            files: files.iter().map(|s| s.to_string()).collect(),
            keep: keep.into(),
            max_distance: d,
            library: vec![],
            distances: vec![],
            identical: vec![],
        }
    }

    #[test]
    fn the_page_puts_the_least_certain_cluster_first_and_marks_the_keep() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.png");
        Image::new(400, 100, Channels::Rgb, vec![200; 400 * 100 * 3]).unwrap().save(&a).unwrap();
        let a = a.to_str().unwrap().to_string();
        let missing = dir.path().join("gone.png").to_str().unwrap().to_string();
        let clusters = vec![cluster(&[&a, &missing], &a, 0.1), cluster(&[&a, &missing], &a, 0.45)];
        let files: Vec<Vec<ReviewFile>> = clusters
            .iter()
            .map(|c| c.files.iter().map(|p| review_file(p, Some(if *p == c.keep { 0.0 } else { 0.3 }))).collect())
            .collect();
        assert_eq!(files[0][0].size, Some((400, 100)));
        assert_eq!(files[0][0].format, "PNG");
        assert!(files[0][0].thumb.as_deref().unwrap().starts_with("data:image/jpeg;base64,/9j/"));
        assert!(files[0][1].thumb.is_none() && files[0][1].format.contains("unreadable"));
        assert_eq!(review_order(&clusters), vec![1, 0]);
        let page = review_html(&clusters, &files, "phash <test>", 0.5);
        let (second, first) = (page.find("id=\"cluster-2\"").unwrap(), page.find("id=\"cluster-1\"").unwrap());
        assert!(second < first, "the cluster nearest the threshold comes first");
        assert_eq!(page.matches("<figure class=\"keep\">").count(), 2);
        assert_eq!(page.matches("<img ").count(), 2);
        assert_eq!(page.matches("cannot be read").count(), 2);
        assert!(page.contains("phash &lt;test&gt;") && page.contains("0.3000 from the keep"));
        assert!(page.contains("class=\"uncertain\""), "0.45 of 0.5 is within 15 % of the threshold");
        assert!(!page.contains("http://") && !page.contains("https://"), "self-contained");
    }

    #[test]
    fn thumbnails_fit_the_box_and_are_never_enlarged() {
        let img = Image::new(50, 20, Channels::Gray, vec![9; 1000]).unwrap();
        let uri = thumbnail_uri(&img).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(uri.split(',').nth(1).unwrap()).unwrap();
        let t = image::load_from_memory(&bytes).unwrap();
        assert_eq!((t.width(), t.height()), (50, 20));
        let big = Image::new(1000, 500, Channels::Rgb, vec![9; 1_500_000]).unwrap();
        let uri = thumbnail_uri(&big).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(uri.split(',').nth(1).unwrap()).unwrap();
        let t = image::load_from_memory(&bytes).unwrap();
        assert_eq!((t.width(), t.height()), (THUMB_SIDE, THUMB_SIDE / 2));
    }
}
