//! Fashion-MNIST: 70,000 28×28 grayscale images of 10 clothing classes (Zalando, 2017).

use std::path::Path;

use crate::data::idx::read_idx_file;
use crate::error::{Error, Result};
use crate::image::{Channels, Image};

/// Class names, indexed by label.
pub const CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// Side of every image, pixels.
pub const SIDE: usize = 28;

/// One split: `images` holds `len()` images of `SIDE × SIDE` bytes, row-major, 0 = black.
#[derive(Clone, Debug)]
pub struct Split {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Pixels of image `i` (784 bytes).
    pub fn pixels(&self, i: usize) -> &[u8] {
        &self.images[i * SIDE * SIDE..(i + 1) * SIDE * SIDE]
    }
    /// Image `i` as a grayscale [`Image`].
    pub fn image(&self, i: usize) -> Image {
        Image::new(SIDE as u32, SIDE as u32, Channels::Gray, self.pixels(i).to_vec()).expect("28x28")
    }

    /// The last `n` images (a classifier run's validation images: [`validation_start`]).
    pub fn tail(&self, n: usize) -> Split {
        let start = validation_start(self.len(), n);
        Split { images: self.images[start * SIDE * SIDE..].to_vec(), labels: self.labels[start..].to_vec() }
    }
}

/// Where a classifier run's `n` validation images begin in a training split of `len` images: they
/// are its last `n`, never trained on, so that settings can be chosen without the test split.
pub fn validation_start(len: usize, n: usize) -> usize {
    len.saturating_sub(n)
}

/// Both splits.
#[derive(Clone, Debug)]
pub struct FashionMnist {
    pub train: Split,
    pub test: Split,
}

impl FashionMnist {
    /// Loads the four `*-ubyte.gz` files from `dir` (the `fashion-mnist` asset folder).
    pub fn load(dir: &Path) -> Result<Self> {
        Ok(Self { train: load_split(dir, "train")?, test: load_split(dir, "t10k")? })
    }
}

fn load_split(dir: &Path, prefix: &str) -> Result<Split> {
    let images_path = dir.join(format!("{prefix}-images-idx3-ubyte.gz"));
    let labels_path = dir.join(format!("{prefix}-labels-idx1-ubyte.gz"));
    if !images_path.is_file() {
        return Err(Error::Asset(format!(
            "{} is missing: run `stabilize fetch fashion-mnist` first",
            images_path.display()
        )));
    }
    let images = read_idx_file(&images_path)?;
    let labels = read_idx_file(&labels_path)?;
    let bad = |path: &Path, reason: String| Error::Idx { path: path.to_path_buf(), reason };
    if images.dims.len() != 3 || images.dims[1] != SIDE || images.dims[2] != SIDE {
        return Err(bad(&images_path, format!("expected N×28×28 images, got {:?}", images.dims)));
    }
    if labels.dims.len() != 1 || labels.dims[0] != images.dims[0] {
        return Err(bad(&labels_path, format!("{:?} labels for {} images", labels.dims, images.dims[0])));
    }
    if let Some(&l) = labels.data.iter().find(|&&l| l as usize >= CLASSES.len()) {
        return Err(bad(&labels_path, format!("label {l} is not a class (0..=9)")));
    }
    Ok(Split { images: images.data, labels: labels.data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::encode_idx;
    use std::io::Write;

    fn write_gz(path: &Path, bytes: &[u8]) {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        std::fs::write(path, e.finish().unwrap()).unwrap();
    }

    #[test]
    fn the_tail_is_the_last_images_with_their_labels() {
        let split = Split { images: (0..3 * 784).map(|i| (i / 784) as u8).collect(), labels: vec![4, 5, 6] };
        let t = split.tail(2);
        assert_eq!((t.len(), t.labels.as_slice()), (2, &[5u8, 6][..]));
        assert!(t.pixels(0).iter().all(|&p| p == 1) && t.pixels(1).iter().all(|&p| p == 2));
        assert_eq!(validation_start(60_000, 10_000), 50_000);
        assert_eq!(split.tail(5).len(), 3, "more than there are: all of them");
    }

    #[test]
    fn loads_a_small_fixture_and_checks_labels() {
        let dir = tempfile::tempdir().unwrap();
        for prefix in ["train", "t10k"] {
            let pixels: Vec<u8> = (0..2 * 784).map(|i| (i % 251) as u8).collect();
            write_gz(&dir.path().join(format!("{prefix}-images-idx3-ubyte.gz")), &encode_idx(&[2, 28, 28], &pixels));
            write_gz(&dir.path().join(format!("{prefix}-labels-idx1-ubyte.gz")), &encode_idx(&[2], &[3, 9]));
        }
        let fm = FashionMnist::load(dir.path()).unwrap();
        assert_eq!(fm.train.len(), 2);
        assert_eq!(fm.test.labels, vec![3, 9]);
        assert_eq!(fm.train.image(1).get(0, 0, 0), (784 % 251) as u8);
        // An out-of-range label is rejected.
        write_gz(&dir.path().join("t10k-labels-idx1-ubyte.gz"), &encode_idx(&[2], &[3, 10]));
        assert!(FashionMnist::load(dir.path()).unwrap_err().to_string().contains("label 10"));
        // A missing folder says what to run.
        let err = FashionMnist::load(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(err.contains("stabilize fetch fashion-mnist"), "{err}");
    }
}
