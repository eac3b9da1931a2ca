//! The ImageNet classifier's stability on the held-out photos, the original network beside a
//! stabilized run (`eval classify` on a `--dataset photos` run). The schema and the metrics are the
//! core's ([`stabilize_core::eval::imagenet`]).
//!
//! Images: the [`EVAL_CROPS`](stabilize_core::data::crops::EVAL_CROPS) evaluation crops of each
//! held-out photo at the run's input side, clean and under each distortion (applied to the 8-bit
//! crop, seeds as in every evaluation), and the labelled ImageNet photos as fetched, through the
//! ImageNet evaluation transform ([`center_crop`]).

use std::time::Instant;

use burn::tensor::Device;
use rayon::prelude::*;
use stabilize_core::data::crops::Photo;
use stabilize_core::eval::imagenet::{ImagenetEval, ImagenetModelEval, NetworkLogits, Reference};
use stabilize_core::seeds::item_seed;
use stabilize_core::{Distortion, Image};

use crate::imagenet::center_crop;
use crate::infer::{EMBED_BATCH, imagenet_logits};
use crate::mobilenet::MobileNetV2;

/// The crops every network is judged on: the evaluation crops of `photos[i]`, `i` in `test`, at
/// `size` px.
pub fn eval_crops(photos: &[Photo], test: &[usize], size: usize) -> stabilize_core::Result<Vec<Image>> {
    let jobs: Vec<(usize, stabilize_core::data::crops::Crop)> =
        test.iter().flat_map(|&i| photos[i].eval_crops().into_iter().map(move |c| (i, c))).collect();
    jobs.par_iter().map(|&(i, c)| photos[i].render(c, size as u32)).collect()
}

/// Evaluates `networks` (`(name, model)`, the original network first: the clean agreement is
/// measured against it) on the crops of the held-out photos `test` at `size` px and on the
/// `labelled` photos (`(image, class)`, as fetched: `dirs::labelled_imagenet_photos`) through the
/// ImageNet evaluation transform. `on_classified(n)` is called as each batch of `n` images is
/// classified.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_imagenet(
    networks: &[(String, &MobileNetV2)],
    photos: &[Photo],
    test: &[usize],
    labelled: &[(Image, usize)],
    distortions: &[Distortion],
    size: usize,
    seed: u64,
    device: &Device,
    on_classified: &mut dyn FnMut(usize),
) -> stabilize_core::Result<ImagenetEval> {
    assert!(!networks.is_empty(), "at least the original network");
    let started = Instant::now();
    let clean = eval_crops(photos, test, size)?;
    let labels: Vec<usize> = labelled.iter().map(|(_, c)| *c).collect();
    let labelled: Vec<Image> =
        labelled.par_iter().map(|(img, _)| center_crop(img)).collect::<stabilize_core::Result<_>>()?;
    let mut classify = |images: &[Image], out: &mut Vec<Vec<f32>>| {
        for (_, net) in networks {
            out.push(imagenet_logits(net, images, EMBED_BATCH, device));
            on_classified(images.len());
        }
    };
    let (mut clean_logits, mut labelled_logits) = (Vec::new(), Vec::new());
    classify(&clean, &mut clean_logits);
    classify(&labelled, &mut labelled_logits);
    // distorted[network][d]
    let mut distorted: Vec<Vec<Vec<f32>>> = vec![Vec::new(); networks.len()];
    for (k, d) in distortions.iter().enumerate() {
        let images = d.apply_batch(&clean, item_seed(seed, k as u64))?;
        let mut per_net = Vec::new();
        classify(&images, &mut per_net);
        for (n, logits) in per_net.into_iter().enumerate() {
            distorted[n].push(logits);
        }
    }
    let logits_of =
        |n: usize| NetworkLogits { clean: &clean_logits[n], distorted: &distorted[n], labelled: &labelled_logits[n] };
    let reference = Reference::from_logits(&logits_of(0));
    let specs: Vec<String> = distortions.iter().map(|d| d.to_string()).collect();
    let models = networks
        .iter()
        .enumerate()
        .map(|(n, (name, _))| ImagenetModelEval::from_logits(name, &logits_of(n), &reference, &labels, &specs))
        .collect();
    Ok(ImagenetEval {
        photos: test.len(),
        images: clean.len(),
        input_size: size,
        seed,
        models,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Images [`evaluate_imagenet`] classifies per network (for progress bars).
pub fn images_per_network(test: usize, labelled: usize, distortions: usize) -> usize {
    test * stabilize_core::data::crops::EVAL_CROPS * (1 + distortions) + labelled
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mobilenet::MobileNetV2Config;

    #[test]
    fn a_network_beside_itself_scores_the_same_and_agrees_everywhere() {
        let _guard = crate::test_rng_lock();
        let device = Device::flex();
        let photos = crate::test_photos(&["a.png".into(), "b.png".into(), "c.png".into()]);
        let labelled = [(photos[2].image.clone(), 243)];
        let net = MobileNetV2Config::new().init(&device);
        let distortions: Vec<Distortion> = stabilize_core::distort::parse_list("jpeg:90,hflip").unwrap();
        let mut seen = 0;
        let nets = [("original".to_string(), &net), ("copy".to_string(), &net)];
        let e = evaluate_imagenet(&nets, &photos, &[0, 1], &labelled, &distortions, 32, 0, &device, &mut |n| seen += n)
            .unwrap();
        assert_eq!(seen, 2 * images_per_network(2, 1, 2));
        assert_eq!((e.photos, e.images, e.models.len()), (2, 32, 2));
        assert_eq!(e.models[1], ImagenetModelEval { model: "copy".into(), ..e.models[0].clone() });
        assert_eq!(e.models[0].clean_agreement, 1.0);
        assert_eq!(e.models[0].labelled.images, 1);
        assert_eq!(e.models[0].distortions.iter().map(|d| d.spec.as_str()).collect::<Vec<_>>(), ["jpeg:90", "hflip"]);
        for d in &e.models[0].distortions {
            assert!((0.0..=1.0).contains(&d.flip_rate) && d.top5_agreement >= 1.0 - d.flip_rate, "{d:?}");
            assert_eq!(d.agreement, Some(1.0));
        }
    }
}
