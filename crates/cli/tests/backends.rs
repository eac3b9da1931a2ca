//! The libtorch backend end to end (built with `--features tch`), the objectives of issue 9 and
//! `stabilize bench` with its references, on the real files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn stabilize(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stabilize")).args(args).output().expect("runs")
}

fn ok_json(o: Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(out.lines().last().expect("output")).expect("JSON on the last line")
}

fn data() -> Option<PathBuf> {
    let data = std::env::var_os("STABILIZE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"));
    if data.join("fashion-mnist/t10k-labels-idx1-ubyte.gz").is_file()
        && data.join("mobilenet-v2/mobilenet_v2-b0353104.pth").is_file()
        && data.join("photos").is_dir()
    {
        return Some(data);
    }
    assert!(std::env::var("STABILIZE_REQUIRE_DATA").as_deref() != Ok("1"), "data missing in {}", data.display());
    eprintln!("skipping: data not fetched");
    None
}

fn train_classify(d: &str, out: &Path, backend: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "train",
        "classify",
        "--data-dir",
        d,
        "--backend",
        backend,
        "--epochs",
        "1",
        "--train-subset",
        "1024",
        "--batch-size",
        "64",
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    ok_json(stabilize(&args))
}

/// Every objective and both kinds of `--perturb` train a real classifier that beats chance by far;
/// the saved config says what was trained; bad combinations are one-line errors.
#[test]
fn objectives_and_real_distortion_perturbations_train() {
    let Some(data) = data() else { return };
    let d = data.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mix = "jpeg:10-90,thumb:25-75,crop:0-4,noise:0-0.2";
    for (name, extra) in [
        ("stab-real", vec!["--alpha", "1", "--loss", "kl", "--perturb", mix]),
        ("augment", vec!["--objective", "augment", "--perturb", mix]),
        ("jsd", vec!["--objective", "jsd", "--alpha", "12", "--perturb", "noise:0.1"]),
    ] {
        let out = dir.path().join(name);
        let s = train_classify(d, &out, "flex", &extra);
        assert!(s["test_top1"].as_f64().unwrap() > 0.5, "{name}: {s}");
        let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        match name {
            "stab-real" => assert_eq!(cfg["perturb"], mix),
            "augment" => assert_eq!(cfg["objective"], "augment"),
            _ => {
                assert_eq!(cfg["objective"], "jsd");
                assert_eq!(cfg["sigma"], 0.1);
                assert!(cfg.get("perturb").is_none());
                // The JS term is reported as the stability term and is positive.
                assert!(s["history"][0]["stability"].as_f64().unwrap() > 0.0, "{s}");
            }
        }
    }
    for (args, want) in [
        (vec!["--objective", "augment", "--alpha", "1"], "does not apply"),
        (vec!["--objective", "jsd"], "needs --alpha > 0"),
        (vec!["--perturb", "crop:0-40"], "larger than 40 px"),
        (vec!["--perturb", "swirl:1"], "unknown family"),
        (vec!["--objective", "mixup"], "invalid value 'mixup' for '--objective"),
    ] {
        let out = dir.path().join("bad");
        let mut a = vec!["train", "classify", "--data-dir", d, "--out", out.to_str().unwrap()];
        a.extend_from_slice(&args);
        let o = stabilize(&a);
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want) && err.trim_end().lines().count() == 1, "{args:?}: {err}");
    }
}

fn tch_required() -> bool {
    std::env::var("STABILIZE_REQUIRE_TCH").as_deref() == Ok("1")
}

/// Training, evaluation and the embedding path on libtorch: the same commands as on flex.
#[test]
fn tch_backend_trains_and_evaluates_classifiers_and_embeddings() {
    if !cfg!(feature = "tch") {
        assert!(!tch_required(), "STABILIZE_REQUIRE_TCH=1 but this build has no tch feature");
        eprintln!("skipping: built without --features tch");
        return;
    }
    let Some(data) = data() else { return };
    let d = data.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cls = dir.path().join("cls");
    let s = train_classify(d, &cls, "tch", &["--alpha", "1", "--sigma", "0.1", "--loss", "kl"]);
    assert!(s["test_top1"].as_f64().unwrap() > 0.5, "{s}");
    let eval_on = |backend: &str| {
        ok_json(stabilize(&[
            "eval",
            "classify",
            "--backend",
            backend,
            "--data-dir",
            d,
            "--model",
            cls.to_str().unwrap(),
            "--distortions",
            "jpeg:10",
            "--json",
        ]))
    };
    let e = eval_on("tch");
    assert!((e["clean"]["top1"].as_f64().unwrap() - s["test_top1"].as_f64().unwrap()).abs() < 1e-9, "{e}");
    // The same weights evaluated on flex agree with tch.
    let f = eval_on("flex");
    let (a, b) = (e["clean"]["top1"].as_f64().unwrap(), f["clean"]["top1"].as_f64().unwrap());
    assert!((a - b).abs() <= 0.002, "tch {a} vs flex {b}");

    let emb = dir.path().join("emb");
    let s = ok_json(stabilize(&[
        "train",
        "embed",
        "--backend",
        "tch",
        "--data-dir",
        d,
        "--alpha",
        "0.1",
        "--steps",
        "4",
        "--batch-size",
        "4",
        "--input-size",
        "64",
        "--checkpoint-every",
        "2",
        "--out",
        emb.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(s["history"].as_array().unwrap().len(), 2, "{s}");
    let e = ok_json(stabilize(&[
        "eval",
        "embed",
        "--backend",
        "tch",
        "--data-dir",
        d,
        "--model",
        emb.to_str().unwrap(),
        "--distortions",
        "jpeg:30",
        "--json",
    ]));
    let ap = e["pooled"]["ap"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ap), "{e}");
}

/// `stabilize bench --json`: every compiled backend measured, PyTorch and Pillow beside them when
/// their venvs exist (required in CI), and positive rates.
#[test]
fn bench_reports_every_backend_and_the_references() {
    let Some(data) = data() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let torch_py = root.join(".venv-torch/bin/python");
    let pillow_py = root.join(".venv-check/bin/python");
    let mut args = vec![
        "bench".to_string(),
        "--data-dir".into(),
        data.display().to_string(),
        "--steps".into(),
        "2".into(),
        "--rounds".into(),
        "1".into(),
        "--epoch-images".into(),
        "256".into(),
        "--images".into(),
        "2".into(),
        "--repeats".into(),
        "1".into(),
        "--mobilenet-steps".into(),
        "1".into(),
        "--mobilenet-batch".into(),
        "2".into(),
        "--embed-triplets".into(),
        "1".into(),
        "--json".into(),
    ];
    let torch = torch_py.is_file();
    if torch {
        args.push(format!("--pytorch-python={}", torch_py.display()));
    }
    if pillow_py.is_file() {
        args.push(format!("--pillow-python={}", pillow_py.display()));
    }
    let v = ok_json(Command::new(env!("CARGO_BIN_EXE_stabilize")).args(&args).output().unwrap());
    let mut want = vec!["flex"];
    if cfg!(feature = "tch") {
        want.push("tch");
    }
    if torch || tch_required() {
        want.push("pytorch");
    }
    for key in [
        "train_img_per_s",
        "train_plain_img_per_s",
        "infer_img_per_s",
        "epoch_seconds",
        "mobilenet_infer_img_per_s",
        "embed_step_img_per_s",
    ] {
        for b in &want {
            let x = v[key][b].as_f64().unwrap_or_else(|| panic!("{key}.{b} missing: {v}"));
            assert!(x.is_finite() && x > 0.0, "{key}.{b} = {x}");
        }
    }
    assert!(v["train_img_per_s"].get("cuda").is_none(), "a backend not built is left out");
    // FLOPs per image from the models' shapes, and the achieved rate of every measured one.
    assert_eq!(v["flops_per_image"]["classifier_inference"], 2_436_096.0);
    for (work, rates) in
        [("classifier_stabilized_step", "train_img_per_s"), ("mobilenet_inference_224", "mobilenet_infer_img_per_s")]
    {
        let (f, rate) = (v["flops_per_image"][work].as_f64().unwrap(), v[rates]["flex"].as_f64().unwrap());
        let g = v["gflop_per_s"][work]["flex"].as_f64().unwrap();
        assert!((g - f * rate / 1e9).abs() < 1e-9 * g.max(1.0), "{work}: {g}");
    }
    // PyTorch in both memory layouts; `pytorch` is the faster of them.
    if want.contains(&"pytorch") {
        for key in ["train_img_per_s", "infer_img_per_s", "mobilenet_infer_img_per_s", "embed_step_img_per_s"] {
            let [best, a, b] =
                ["pytorch", "pytorch-nchw", "pytorch-channels-last"].map(|k| v[key][k].as_f64().unwrap());
            assert!(best == a.max(b), "{key}: {best} vs {a}, {b}");
        }
    }
    assert!(v["jpeg_roundtrip_img_per_s"]["stabilize"].as_f64().unwrap() > 0.0);
    if pillow_py.is_file() {
        assert!(v["resize_img_per_s"]["pillow"].as_f64().unwrap() > 0.0, "{v}");
    }
}
