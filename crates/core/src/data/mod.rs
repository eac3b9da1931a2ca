//! Datasets and assets: the IDX format ([`idx`]) and Fashion-MNIST ([`fashion_mnist`]), photo
//! crops, triplets and the held-out split ([`crops`]), the assets fetched from package registries
//! ([`assets`], feature `fetch`) and where they live ([`dirs`]), and `.npy` output ([`npy`]).

#[cfg(feature = "fetch")]
pub mod assets;
pub mod crops;
pub mod dirs;
pub mod fashion_mnist;
pub mod idx;
pub mod npy;
