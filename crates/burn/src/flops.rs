//! Floating-point operations per image of the benchmarked work, from the models' shapes: how close
//! a measured rate is to what the machine can do (`stabilize bench`).
//!
//! Counted: convolutions and linear layers, a multiply-add as 2 FLOPs. Not counted: batch norm,
//! activations, pooling, residual adds and the optimiser (a few percent of MobileNetV2's work, less
//! of the classifier's). A training step counts the forward pass, the input gradient of every
//! layer that has a trainable layer before it, and the weight gradient of every trainable layer,
//! each as many FLOPs as the layer's forward pass.

use crate::mobilenet::FEATURES;
use crate::model::SmallCnnConfig;

/// FLOPs of one layer on one image: forward, and whether its weights train.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerFlops {
    pub forward: f64,
    pub trainable: bool,
}

/// A convolution's FLOPs on one image: `2 · Cout · (Cin / groups) · k² · H' · W'`, the output side
/// `⌊(side + 2p − k) / stride⌋ + 1` with p = (k − 1) / 2 (what both models use). Returns the FLOPs
/// and the output side.
fn conv(side: usize, cin: usize, cout: usize, k: usize, stride: usize, groups: usize) -> (f64, usize) {
    let p = (k - 1) / 2;
    let out = (side + 2 * p - k) / stride + 1;
    (2.0 * (cout * (cin / groups) * k * k * out * out) as f64, out)
}

/// The Fashion-MNIST CNN's layers (conv, conv, linear, linear), all trainable.
pub fn small_cnn_layers(c: &SmallCnnConfig) -> Vec<LayerFlops> {
    let w = c.width;
    let (c1, s1) = conv(c.input_size, c.in_channels, w, 3, 1, 1);
    let (c2, _) = conv(s1 / 2, w, 2 * w, 3, 1, 1);
    let flat = 2 * w * (c.input_size / 4) * (c.input_size / 4);
    [c1, c2, 2.0 * (flat * c.features) as f64, 2.0 * (c.features * c.num_classes) as f64]
        .into_iter()
        .map(|forward| LayerFlops { forward, trainable: true })
        .collect()
}

/// MobileNetV2's layers at `side` px, in order: the stem, each block's expansion, depthwise and
/// projection, the last convolution; the stem and the first `frozen_blocks` blocks frozen. Then
/// `head`: the linear layer on the pooled 1280 features (ImageNet's 1000 classes, or an embedding
/// projection), trainable.
pub fn mobilenet_layers(side: usize, frozen_blocks: usize, head: usize) -> Vec<LayerFlops> {
    const SETTINGS: [(usize, usize, usize, usize); 7] =
        [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)];
    let (f, mut s) = conv(side, 3, 32, 3, 2, 1);
    let mut layers = vec![LayerFlops { forward: f, trainable: false }];
    let (mut cin, mut block) = (32, 0);
    for (t, c, n, stride) in SETTINGS {
        for i in 0..n {
            let trainable = block >= frozen_blocks;
            let hidden = cin * t;
            if t != 1 {
                layers.push(LayerFlops { forward: conv(s, cin, hidden, 1, 1, 1).0, trainable });
            }
            let (dw, out) = conv(s, hidden, hidden, 3, if i == 0 { stride } else { 1 }, hidden);
            layers.push(LayerFlops { forward: dw, trainable });
            s = out;
            layers.push(LayerFlops { forward: conv(s, hidden, c, 1, 1, 1).0, trainable });
            cin = c;
            block += 1;
        }
    }
    layers.push(LayerFlops { forward: conv(s, cin, FEATURES, 1, 1, 1).0, trainable: true });
    layers.push(LayerFlops { forward: 2.0 * (FEATURES * head) as f64, trainable: true });
    layers
}

/// Forward FLOPs of `layers` on one image.
pub fn forward(layers: &[LayerFlops]) -> f64 {
    layers.iter().map(|l| l.forward).sum()
}

/// One training step's FLOPs per image through `layers`: the forward pass, then backward: each
/// trainable layer's weight gradient, and the input gradient of every layer after the first
/// trainable one (the first trainable layer's input needs none).
pub fn train_step(layers: &[LayerFlops]) -> f64 {
    let Some(first) = layers.iter().position(|l| l.trainable) else { return forward(layers) };
    let weight_grads: f64 = layers.iter().filter(|l| l.trainable).map(|l| l.forward).sum();
    let input_grads: f64 = layers[first + 1..].iter().map(|l| l.forward).sum();
    forward(layers) + weight_grads + input_grads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classifier_counts_by_hand() {
        let l = small_cnn_layers(&SmallCnnConfig::new());
        // conv1 2·16·1·9·28·28, conv2 2·32·16·9·14·14, fc1 2·1568·128, fc2 2·128·10.
        let want = [225_792.0, 1_806_336.0, 401_408.0, 2_560.0];
        assert_eq!(l.iter().map(|x| x.forward).collect::<Vec<_>>(), want);
        let f: f64 = want.iter().sum();
        // Backward: every weight gradient, and the input gradients of conv2, fc1 and fc2.
        assert_eq!(train_step(&l), f + f + (f - want[0]));
    }

    #[test]
    fn mobilenet_v2_is_torchvisions_300_million_multiply_adds() {
        // torchvision lists mobilenet_v2 at 0.30 GFLOPS (multiply-adds) for 224 px: 300.8 M with
        // the classifier.
        let l = mobilenet_layers(224, 0, 1000);
        assert_eq!(l.len(), 1 + 17 * 3 - 1 + 1 + 1);
        let macs = forward(&l) / 2.0;
        assert!((macs / 1e6 - 300.8).abs() < 1.0, "{} M multiply-adds", macs / 1e6);
        // Frozen stem and 12 blocks at 128 px: the backward covers only blocks 12–16, the last
        // convolution and the head, so a step costs far less than three forward passes.
        let e = mobilenet_layers(128, 12, 128);
        let (f, t) = (forward(&e), train_step(&e));
        assert!(t > f && t < 2.0 * f, "{t} vs {f}");
        assert!(e.iter().take(1 + 12 * 3 - 1).all(|x| !x.trainable));
    }
}
