//! 2-D convolution: forward, input gradient, weight gradient, bias gradient (see the crate docs).

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

/// The shape of a 2-D convolution: input `[batch, c_in, h, w]`, weight
/// `[c_out, c_in / groups, kh, kw]`, output `[batch, c_out, out_h, out_w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height, pixels.
    pub h: usize,
    /// Input width, pixels.
    pub w: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Step `[vertical, horizontal]`.
    pub stride: [usize; 2],
    /// Zero padding before the first row and column `[top, left]`.
    pub pad_begin: [usize; 2],
    /// Zero padding after the last row and column `[bottom, right]`.
    pub pad_end: [usize; 2],
    /// Spacing of the kernel's taps `[vertical, horizontal]`.
    pub dilation: [usize; 2],
    /// Channel groups.
    pub groups: usize,
}

/// Which kernel a [`ConvGeometry`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvKind {
    /// `groups == 1`: unfold + matrix product.
    Dense,
    /// `groups == 1`, 1×1, stride 1, no padding: the matrix product alone.
    Pointwise,
    /// One filter per channel (`groups == c_in == c_out`).
    Depthwise,
}

impl ConvGeometry {
    fn out_size(size: usize, k: usize, stride: usize, pad: usize, dilation: usize) -> Option<usize> {
        if k == 0 {
            return None;
        }
        let span = dilation * (k - 1) + 1;
        let padded = size + pad;
        (stride > 0 && dilation > 0 && padded >= span).then(|| (padded - span) / stride + 1)
    }

    /// Output height, or `None` when the kernel does not fit the padded input.
    pub fn out_h(&self) -> Option<usize> {
        let pad = self.pad_begin[0] + self.pad_end[0];
        Self::out_size(self.h, self.kh, self.stride[0], pad, self.dilation[0])
    }

    /// Output width, or `None` when the kernel does not fit the padded input.
    pub fn out_w(&self) -> Option<usize> {
        let pad = self.pad_begin[1] + self.pad_end[1];
        Self::out_size(self.w, self.kw, self.stride[1], pad, self.dilation[1])
    }

    /// The kernel for this shape, or `None` for what these kernels do not cover (other channel
    /// groupings, empty tensors, a kernel larger than the padded input).
    pub fn kind(&self) -> Option<ConvKind> {
        let (oh, ow) = (self.out_h()?, self.out_w()?);
        if [self.batch, self.c_in, self.c_out, self.h, self.w, oh, ow].contains(&0) {
            return None;
        }
        if self.groups == 1 {
            let pointwise = self.kh == 1
                && self.kw == 1
                && self.stride == [1, 1]
                && self.pad_begin == [0, 0]
                && self.pad_end == [0, 0];
            Some(if pointwise { ConvKind::Pointwise } else { ConvKind::Dense })
        } else if self.groups == self.c_in && self.c_out == self.c_in {
            Some(ConvKind::Depthwise)
        } else {
            None
        }
    }

    /// Output pixels per channel, `out_h · out_w`.
    fn p(&self) -> usize {
        self.out_h().unwrap_or(0) * self.out_w().unwrap_or(0)
    }

    /// Rows of the unfolded input, `c_in / groups · kh · kw`.
    fn k(&self) -> usize {
        self.c_in / self.groups * self.kh * self.kw
    }

    /// Lengths of input, weight and output, to check the slices.
    fn check(&self, x: usize, weight: usize, out: usize) -> ConvKind {
        let kind = self.kind().unwrap_or_else(|| panic!("no kernel for {self:?}"));
        assert_eq!(x, self.batch * self.c_in * self.h * self.w, "input length");
        assert_eq!(weight, self.c_out * self.k(), "weight length");
        assert_eq!(out, self.batch * self.c_out * self.p(), "output length");
        kind
    }
}

/// The outputs `o` along one axis whose tap at offset `tap` (kernel index × dilation) lands inside
/// the input: `0 ≤ o·stride + tap − pad < size`, as the range `lo..hi` (empty when none does).
#[inline(always)]
fn valid(tap: usize, pad: usize, stride: usize, size: usize, out: usize) -> (usize, usize) {
    let lo = if tap >= pad { 0 } else { (pad - tap).div_ceil(stride) };
    let hi = if size + pad > tap { ((size - 1 + pad - tap) / stride + 1).min(out) } else { 0 };
    let lo = lo.min(out);
    (lo, hi.max(lo))
}

/// How to spread a batch: over images when there are at least as many as threads, else inside
/// each matrix product.
fn plan(batch: usize) -> Parallelism {
    let threads = rayon::current_num_threads();
    if threads > 1 && batch < threads { Parallelism::Rayon(threads) } else { Parallelism::None }
}

/// `dst (m×n) = [dst +] lhs (m×k) · rhs (k×n)`; each operand given by its pointer and its row and
/// column strides, in elements.
#[allow(clippy::too_many_arguments)]
fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    parallelism: Parallelism,
) {
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(m > 0 && n > 0 && k > 0);
    assert!(last(m, n, dst_rs, dst_cs) < dst.len(), "dst too short");
    assert!(last(m, k, lhs_rs, lhs_cs) < lhs.len(), "lhs too short");
    assert!(last(k, n, rhs_rs, rhs_cs) < rhs.len(), "rhs too short");
    // SAFETY: the asserts above keep every element the product reads or writes inside its slice;
    // `dst` is borrowed mutably, so it does not alias `lhs` or `rhs`.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// One kernel tap of an unfold: input row `oy·stride + dy − pad_top` and column
/// `ox·stride + dx − pad_left` for the outputs `oy ∈ oys`, `ox ∈ oxs` that land inside the input.
#[derive(Clone, Copy)]
struct UnfoldTap {
    dy: usize,
    dx: usize,
    oys: (usize, usize),
    oxs: (usize, usize),
}

/// The kernel's taps in unfold-row order `(ky, kx)`.
fn unfold_taps(g: &ConvGeometry, oh: usize, ow: usize) -> Vec<UnfoldTap> {
    let mut taps = Vec::with_capacity(g.kh * g.kw);
    for ky in 0..g.kh {
        let dy = ky * g.dilation[0];
        let oys = valid(dy, g.pad_begin[0], g.stride[0], g.h, oh);
        for kx in 0..g.kw {
            let dx = kx * g.dilation[1];
            taps.push(UnfoldTap { dy, dx, oys, oxs: valid(dx, g.pad_begin[1], g.stride[1], g.w, ow) });
        }
    }
    taps
}

multiversion! {
/// Unfolds one image `[c, h, w]` into `col` `[c·kh·kw, out_h·out_w]` (row `(c, ky, kx)` holds the
/// input each output pixel sees through that tap; zero where it falls in the padding).
fn im2col(g: &ConvGeometry, x: &[f32], col: &mut Vec<f32>) {
    let (oh, ow) = (g.out_h().unwrap(), g.out_w().unwrap());
    let p = oh * ow;
    let taps = unfold_taps(g, oh, ow);
    col.resize(g.k() * p, 0.0);
    let mut rows = col.chunks_exact_mut(p);
    for plane in x.chunks_exact(g.h * g.w) {
        for &UnfoldTap { dy, dx, oys: (oy0, oy1), oxs: (ox0, ox1) } in &taps {
            let row = rows.next().unwrap();
            row[..oy0 * ow].fill(0.0);
            row[oy1 * ow..].fill(0.0);
            for oy in oy0..oy1 {
                let iy = oy * g.stride[0] + dy - g.pad_begin[0];
                let src = &plane[iy * g.w..(iy + 1) * g.w];
                let dst = &mut row[oy * ow..(oy + 1) * ow];
                dst[..ox0].fill(0.0);
                dst[ox1..].fill(0.0);
                if ox0 == ox1 {
                    continue;
                }
                let ix0 = ox0 * g.stride[1] + dx - g.pad_begin[1];
                if g.stride[1] == 1 {
                    dst[ox0..ox1].copy_from_slice(&src[ix0..ix0 + ox1 - ox0]);
                } else {
                    for (d, s) in dst[ox0..ox1].iter_mut().zip(src[ix0..].iter().step_by(g.stride[1])) {
                        *d = *s;
                    }
                }
            }
        }
    }
}
}

multiversion! {
/// The reverse of [`im2col`]: adds each row of `col` back onto the input pixels it came from.
fn col2im(g: &ConvGeometry, col: &[f32], x: &mut [f32]) {
    let (oh, ow) = (g.out_h().unwrap(), g.out_w().unwrap());
    let taps = unfold_taps(g, oh, ow);
    let mut rows = col.chunks_exact(oh * ow);
    for plane in x.chunks_exact_mut(g.h * g.w) {
        for &UnfoldTap { dy, dx, oys: (oy0, oy1), oxs: (ox0, ox1) } in &taps {
            let row = rows.next().unwrap();
            if ox0 == ox1 {
                continue;
            }
            for oy in oy0..oy1 {
                let iy = oy * g.stride[0] + dy - g.pad_begin[0];
                let dst = &mut plane[iy * g.w..(iy + 1) * g.w];
                let src = &row[oy * ow + ox0..oy * ow + ox1];
                let ix0 = ox0 * g.stride[1] + dx - g.pad_begin[1];
                if g.stride[1] == 1 {
                    for (d, s) in dst[ix0..ix0 + src.len()].iter_mut().zip(src) {
                        *d += *s;
                    }
                } else {
                    for (d, s) in dst[ix0..].iter_mut().step_by(g.stride[1]).zip(src) {
                        *d += *s;
                    }
                }
            }
        }
    }
}
}

/// Σ of a slice in eight independent lanes (so that it vectorises), then across them.
#[inline(always)]
fn sum(v: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = v.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (l, x) in lanes.iter_mut().zip(c) {
            *l += *x;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Σ a·b over two slices of one length, in eight lanes as [`sum`].
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The convolution `out = conv(x, weight) + bias`: x `[batch, c_in, h, w]`, weight
/// `[c_out, c_in / groups, kh, kw]`, bias `[c_out]`, out `[batch, c_out, out_h, out_w]`.
///
/// # Panics
/// When [`ConvGeometry::kind`] is `None` or a slice's length does not match the geometry.
pub fn forward(g: &ConvGeometry, x: &[f32], weight: &[f32], bias: &[f32], out: &mut [f32]) {
    let kind = g.check(x.len(), weight.len(), out.len());
    assert_eq!(bias.len(), g.c_out, "bias length");
    if kind == ConvKind::Depthwise {
        return depthwise_forward(g, x, weight, bias, out);
    }
    let (k, p) = (g.k(), g.p());
    let parallelism = plan(g.batch);
    out.par_chunks_mut(g.c_out * p).zip(x.par_chunks(g.c_in * g.h * g.w)).for_each_init(Vec::new, |col, (o, xi)| {
        for (row, b) in o.chunks_exact_mut(p).zip(bias) {
            row.fill(*b);
        }
        let rhs = if kind == ConvKind::Pointwise {
            xi
        } else {
            im2col(g, xi, col);
            &col[..]
        };
        matmul((g.c_out, p, k), o, (p, 1), true, weight, (k, 1), rhs, (p, 1), parallelism);
    });
}

/// The gradient of the loss for the input, `dx` `[batch, c_in, h, w]`, from the output's
/// gradient `dy` `[batch, c_out, out_h, out_w]`.
///
/// # Panics
/// As [`forward`].
pub fn input_grad(g: &ConvGeometry, weight: &[f32], dy: &[f32], dx: &mut [f32]) {
    let kind = g.check(dx.len(), weight.len(), dy.len());
    if kind == ConvKind::Depthwise {
        return depthwise_input_grad(g, weight, dy, dx);
    }
    let (k, p) = (g.k(), g.p());
    let parallelism = plan(g.batch);
    // weightᵀ `[k, c_out]`: element (i, j) is weight[j·k + i].
    let wt = (1, k);
    dx.par_chunks_mut(g.c_in * g.h * g.w).zip(dy.par_chunks(g.c_out * p)).for_each_init(Vec::new, |col, (dxi, dyi)| {
        if kind == ConvKind::Pointwise {
            matmul((k, p, g.c_out), dxi, (p, 1), false, weight, wt, dyi, (p, 1), parallelism);
        } else {
            col.resize(k * p, 0.0);
            matmul((k, p, g.c_out), col, (p, 1), false, weight, wt, dyi, (p, 1), parallelism);
            dxi.fill(0.0);
            col2im(g, col, dxi);
        }
    });
}

/// The gradient of the loss for the weight, `dw` `[c_out, c_in / groups, kh, kw]`, from the input
/// `x` and the output's gradient `dy`.
///
/// # Panics
/// As [`forward`].
pub fn weight_grad(g: &ConvGeometry, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let kind = g.check(x.len(), dw.len(), dy.len());
    if kind == ConvKind::Depthwise {
        return depthwise_weight_grad(g, x, dy, dw);
    }
    let (k, p) = (g.k(), g.p());
    let threads = rayon::current_num_threads().clamp(1, g.batch);
    let per = g.batch.div_ceil(threads);
    let parallelism = if threads == 1 { plan(1) } else { Parallelism::None };
    let (in_img, out_img) = (g.c_in * g.h * g.w, g.c_out * p);
    // Each thread sums its images' products into its own `[c_out, k]`; then the partial sums add.
    let partials: Vec<Vec<f32>> = (0..threads)
        .into_par_iter()
        .map(|t| {
            let mut acc = vec![0f32; g.c_out * k];
            let mut col = Vec::new();
            for n in t * per..((t + 1) * per).min(g.batch) {
                let xi = &x[n * in_img..(n + 1) * in_img];
                let rhs = if kind == ConvKind::Pointwise {
                    xi
                } else {
                    im2col(g, xi, &mut col);
                    &col[..]
                };
                // acc `[c_out, k]` += dy_n `[c_out, p]` · colᵀ `[p, k]` (element (i, j) of colᵀ is col[j·p + i]).
                let dyi = &dy[n * out_img..(n + 1) * out_img];
                matmul((g.c_out, k, p), &mut acc, (k, 1), true, dyi, (p, 1), rhs, (1, p), parallelism);
            }
            acc
        })
        .collect();
    dw.fill(0.0);
    for part in &partials {
        for (d, v) in dw.iter_mut().zip(part) {
            *d += *v;
        }
    }
}

/// The gradient of the loss for the bias, `db` `[c_out]`: `dy` summed over images and pixels.
///
/// # Panics
/// When `dy` or `db` does not match the geometry.
pub fn bias_grad(g: &ConvGeometry, dy: &[f32], db: &mut [f32]) {
    let p = g.p();
    assert_eq!(dy.len(), g.batch * g.c_out * p, "output gradient length");
    assert_eq!(db.len(), g.c_out, "bias length");
    db.par_iter_mut().enumerate().for_each(|(c, d)| {
        *d = (0..g.batch).map(|n| sum(&dy[(n * g.c_out + c) * p..][..p])).sum();
    });
}

/// How the depthwise loops lay out one `[h, w]` plane: with the convolution's zero padding around
/// it, and each row split by column modulo the horizontal stride into `stride` phase rows of `pw`
/// (phase `j` holds padded columns `j, j + stride, …`). Kernel column `kx` of output column `ox`
/// is then element `offsets[kx] + ox` of its padded row, so every tap of every output row is one
/// contiguous run, with no bounds to check, for any stride, padding or dilation.
struct Phased {
    /// Padded rows.
    hp: usize,
    /// Length of one phase row, `⌈padded width / stride⌉`.
    pw: usize,
    /// Where kernel column `kx`'s run starts in a padded row.
    offsets: Vec<usize>,
}

impl Phased {
    fn new(g: &ConvGeometry) -> Self {
        let sx = g.stride[1];
        let pw = (g.w + g.pad_begin[1] + g.pad_end[1]).div_ceil(sx);
        let offsets = (0..g.kw)
            .map(|kx| {
                let t = kx * g.dilation[1];
                (t % sx) * pw + t / sx
            })
            .collect();
        Self { hp: g.h + g.pad_begin[0] + g.pad_end[0], pw, offsets }
    }

    /// Length of one padded row: all its phases.
    fn row_len(&self, g: &ConvGeometry) -> usize {
        g.stride[1] * self.pw
    }

    /// The padded row that kernel row `ky` reads for output row `oy`.
    #[inline(always)]
    fn row<'a>(&self, g: &ConvGeometry, buf: &'a [f32], oy: usize, ky: usize) -> &'a [f32] {
        let (rl, r) = (self.row_len(g), oy * g.stride[0] + ky * g.dilation[0]);
        &buf[r * rl..(r + 1) * rl]
    }

    /// Where input row `iy` starts in the layout.
    #[inline(always)]
    fn row_start(&self, g: &ConvGeometry, iy: usize) -> usize {
        (iy + g.pad_begin[0]) * self.row_len(g)
    }

    /// Each input column's place in a padded row, in order (no division per column: the phase
    /// and the index within it advance together).
    #[inline(always)]
    fn columns(&self, g: &ConvGeometry) -> impl Iterator<Item = usize> {
        let (s, pw) = (g.stride[1], self.pw);
        let (mut phase, mut index) = (g.pad_begin[1] % s, g.pad_begin[1] / s);
        (0..g.w).map(move |_| {
            let at = phase * pw + index;
            phase += 1;
            if phase == s {
                phase = 0;
                index += 1;
            }
            at
        })
    }

    /// `buf` = the plane `xi` `[h, w]` in this layout (zeros in the padding).
    #[inline(always)]
    fn fill(&self, g: &ConvGeometry, xi: &[f32], buf: &mut Vec<f32>) {
        buf.clear();
        buf.resize(self.hp * self.row_len(g), 0.0);
        for (iy, src) in xi.chunks_exact(g.w).enumerate() {
            let row = &mut buf[self.row_start(g, iy)..][..self.row_len(g)];
            if g.stride[1] == 1 {
                row[g.pad_begin[1]..g.pad_begin[1] + g.w].copy_from_slice(src);
            } else {
                for (at, v) in self.columns(g).zip(src) {
                    row[at] = *v;
                }
            }
        }
    }

    /// `dxi` `[h, w]` = the plane part of `buf` in this layout (the padding dropped).
    #[inline(always)]
    fn read_back(&self, g: &ConvGeometry, buf: &[f32], dxi: &mut [f32]) {
        for (iy, dst) in dxi.chunks_exact_mut(g.w).enumerate() {
            let row = &buf[self.row_start(g, iy)..][..self.row_len(g)];
            if g.stride[1] == 1 {
                dst.copy_from_slice(&row[g.pad_begin[1]..g.pad_begin[1] + g.w]);
            } else {
                for (at, d) in self.columns(g).zip(dst) {
                    *d = row[at];
                }
            }
        }
    }
}

/// Depthwise forward, one `(image, channel)` plane per task, over the plane in the [`Phased`]
/// layout; a 3-wide kernel row is one pass over the output row.
fn depthwise_forward(g: &ConvGeometry, x: &[f32], weight: &[f32], bias: &[f32], out: &mut [f32]) {
    let ow = g.out_w().unwrap();
    let kk = g.kh * g.kw;
    let lay = Phased::new(g);
    out.par_chunks_mut(g.out_h().unwrap() * ow).zip(x.par_chunks(g.h * g.w)).enumerate().for_each_init(
        Vec::new,
        |buf: &mut Vec<f32>, (plane, (o, xi))| {
            let c = plane % g.c_out;
            depthwise_forward_plane(g, &lay, &weight[c * kk..(c + 1) * kk], bias[c], xi, o, buf);
        },
    );
}

multiversion! {
/// One plane of [`depthwise_forward`]: `o` `[oh, ow]` from `xi` `[h, w]`, filter `w`, bias `b`.
fn depthwise_forward_plane(
    g: &ConvGeometry,
    lay: &Phased,
    w: &[f32],
    b: f32,
    xi: &[f32],
    o: &mut [f32],
    buf: &mut Vec<f32>,
) {
    let ow = g.out_w().unwrap();
    lay.fill(g, xi, buf);
    for (oy, row) in o.chunks_exact_mut(ow).enumerate() {
        row.fill(b);
        for ky in 0..g.kh {
            let prow = lay.row(g, buf, oy, ky);
            let wr = &w[ky * g.kw..(ky + 1) * g.kw];
            if let [o0, o1, o2] = lay.offsets[..] {
                let (a, bb, cc) = (&prow[o0..o0 + ow], &prow[o1..o1 + ow], &prow[o2..o2 + ow]);
                let (w0, w1, w2) = (wr[0], wr[1], wr[2]);
                for (((d, a), bb), cc) in row.iter_mut().zip(a).zip(bb).zip(cc) {
                    *d += w0 * *a + w1 * *bb + w2 * *cc;
                }
            } else {
                for (&off, &wv) in lay.offsets.iter().zip(wr) {
                    for (d, v) in row.iter_mut().zip(&prow[off..off + ow]) {
                        *d += wv * *v;
                    }
                }
            }
        }
    }
}
}

/// Depthwise input gradient: each output gradient row scattered back through the taps into the
/// plane's [`Phased`] layout, then read back without the padding.
fn depthwise_input_grad(g: &ConvGeometry, weight: &[f32], dy: &[f32], dx: &mut [f32]) {
    let ow = g.out_w().unwrap();
    let kk = g.kh * g.kw;
    let lay = Phased::new(g);
    dx.par_chunks_mut(g.h * g.w).zip(dy.par_chunks(g.out_h().unwrap() * ow)).enumerate().for_each_init(
        Vec::new,
        |buf, (plane, (dxi, dyi))| {
            let c = plane % g.c_in;
            depthwise_input_grad_plane(g, &lay, &weight[c * kk..(c + 1) * kk], dyi, dxi, buf);
        },
    );
}

multiversion! {
/// One plane of [`depthwise_input_grad`]: `dxi` `[h, w]` from `dyi` `[oh, ow]` and filter `w`.
fn depthwise_input_grad_plane(g: &ConvGeometry, lay: &Phased, w: &[f32], dyi: &[f32], dxi: &mut [f32], buf: &mut Vec<f32>) {
    let (ow, rl) = (g.out_w().unwrap(), lay.row_len(g));
    buf.clear();
    buf.resize(lay.hp * rl, 0.0);
    for (oy, grow) in dyi.chunks_exact(ow).enumerate() {
        for ky in 0..g.kh {
            let r = oy * g.stride[0] + ky * g.dilation[0];
            let prow = &mut buf[r * rl..(r + 1) * rl];
            for (&off, &wv) in lay.offsets.iter().zip(&w[ky * g.kw..(ky + 1) * g.kw]) {
                for (d, v) in prow[off..off + ow].iter_mut().zip(grow) {
                    *d += wv * *v;
                }
            }
        }
    }
    lay.read_back(g, buf, dxi);
}
}

/// Depthwise weight gradient: per channel, every tap's dot product of the output gradient with the
/// input it saw (the plane in the [`Phased`] layout, so the padding contributes zeros), over all
/// images.
fn depthwise_weight_grad(g: &ConvGeometry, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let lay = Phased::new(g);
    dw.par_chunks_mut(g.kh * g.kw).enumerate().for_each_init(Vec::new, |buf, (c, dwc)| {
        depthwise_weight_grad_channel(g, &lay, c, x, dy, dwc, buf);
    });
}

multiversion! {
/// One channel `c` of [`depthwise_weight_grad`]: its filter's gradient `dwc` `[kh, kw]`.
fn depthwise_weight_grad_channel(
    g: &ConvGeometry,
    lay: &Phased,
    c: usize,
    x: &[f32],
    dy: &[f32],
    dwc: &mut [f32],
    buf: &mut Vec<f32>,
) {
    let (oh, ow) = (g.out_h().unwrap(), g.out_w().unwrap());
    let (in_plane, out_plane) = (g.h * g.w, oh * ow);
    dwc.fill(0.0);
    for n in 0..g.batch {
        lay.fill(g, &x[(n * g.c_in + c) * in_plane..][..in_plane], buf);
        let dyi = &dy[(n * g.c_out + c) * out_plane..][..out_plane];
        for (oy, grow) in dyi.chunks_exact(ow).enumerate() {
            for ky in 0..g.kh {
                let prow = lay.row(g, buf, oy, ky);
                for (d, &off) in dwc[ky * g.kw..(ky + 1) * g.kw].iter_mut().zip(&lay.offsets) {
                    *d += dot(grow, &prow[off..off + ow]);
                }
            }
        }
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one multiply-add at a time, in f64: out, dx, dw, db for a given dy.
    struct Reference {
        out: Vec<f64>,
        dx: Vec<f64>,
        dw: Vec<f64>,
        db: Vec<f64>,
    }

    #[allow(clippy::needless_range_loop)]
    fn reference(g: &ConvGeometry, x: &[f32], w: &[f32], b: &[f32], dy: &[f32]) -> Reference {
        let (oh, ow) = (g.out_h().unwrap(), g.out_w().unwrap());
        let cg_in = g.c_in / g.groups;
        let cg_out = g.c_out / g.groups;
        let mut r = Reference {
            out: vec![0.0; g.batch * g.c_out * oh * ow],
            dx: vec![0.0; x.len()],
            dw: vec![0.0; w.len()],
            db: vec![0.0; g.c_out],
        };
        for n in 0..g.batch {
            for co in 0..g.c_out {
                let group = co / cg_out;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let o = ((n * g.c_out + co) * oh + oy) * ow + ox;
                        let mut acc = b[co] as f64;
                        r.db[co] += dy[o] as f64;
                        for ci in 0..cg_in {
                            let c = group * cg_in + ci;
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    let iy = (oy * g.stride[0] + ky * g.dilation[0]) as isize - g.pad_begin[0] as isize;
                                    let ix = (ox * g.stride[1] + kx * g.dilation[1]) as isize - g.pad_begin[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                        continue;
                                    }
                                    let xi = ((n * g.c_in + c) * g.h + iy as usize) * g.w + ix as usize;
                                    let wi = ((co * cg_in + ci) * g.kh + ky) * g.kw + kx;
                                    acc += x[xi] as f64 * w[wi] as f64;
                                    r.dx[xi] += w[wi] as f64 * dy[o] as f64;
                                    r.dw[wi] += x[xi] as f64 * dy[o] as f64;
                                }
                            }
                        }
                        r.out[o] = acc;
                    }
                }
            }
        }
        r
    }

    /// Deterministic values in [−1, 1).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn close(ours: &[f32], reference: &[f64], what: &str, g: &ConvGeometry) {
        assert_eq!(ours.len(), reference.len());
        for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
            assert!((*a as f64 - b).abs() <= 1e-4 * (1.0 + b.abs()), "{what} [{i}]: {a} vs {b} for {g:?}");
        }
    }

    fn check(g: ConvGeometry) {
        assert!(g.kind().is_some(), "{g:?}");
        let p = g.out_h().unwrap() * g.out_w().unwrap();
        let x = values(g.batch * g.c_in * g.h * g.w, 1);
        let w = values(g.c_out * g.c_in / g.groups * g.kh * g.kw, 2);
        let b = values(g.c_out, 3);
        let dy = values(g.batch * g.c_out * p, 4);
        let r = reference(&g, &x, &w, &b, &dy);
        let mut out = vec![f32::NAN; r.out.len()];
        forward(&g, &x, &w, &b, &mut out);
        close(&out, &r.out, "out", &g);
        // Buffers start as garbage: every kernel must overwrite, not add to, its output.
        let mut dx = vec![f32::NAN; x.len()];
        input_grad(&g, &w, &dy, &mut dx);
        close(&dx, &r.dx, "dx", &g);
        let mut dw = vec![f32::NAN; w.len()];
        weight_grad(&g, &x, &dy, &mut dw);
        close(&dw, &r.dw, "dw", &g);
        let mut db = vec![f32::NAN; b.len()];
        bias_grad(&g, &dy, &mut db);
        close(&db, &r.db, "db", &g);
    }

    fn geometry(batch: usize, c_in: usize, c_out: usize, hw: [usize; 2], k: [usize; 2]) -> ConvGeometry {
        ConvGeometry {
            batch,
            c_in,
            h: hw[0],
            w: hw[1],
            c_out,
            kh: k[0],
            kw: k[1],
            stride: [1, 1],
            pad_begin: [0, 0],
            pad_end: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }

    #[test]
    fn the_bounds_of_a_tap() {
        // 3 taps, pad 1, stride 1, 5 wide, 5 out: tap 0 misses output 0, tap 2 misses output 4.
        assert_eq!(valid(0, 1, 1, 5, 5), (1, 5));
        assert_eq!(valid(1, 1, 1, 5, 5), (0, 5));
        assert_eq!(valid(2, 1, 1, 5, 5), (0, 4));
        // Stride 2, pad 1, 6 wide, 3 out: tap 0 reads −1, 1, 3 (misses output 0); tap 2 reads 1, 3, 5.
        assert_eq!(valid(0, 1, 2, 6, 3), (1, 3));
        assert_eq!(valid(2, 1, 2, 6, 3), (0, 3));
        // A tap past a tiny input: none.
        assert_eq!(valid(4, 0, 1, 2, 1), (0, 0));
        // Padding that no output reaches: empty, and never below zero.
        let (lo, hi) = valid(0, 5, 1, 3, 2);
        assert_eq!(lo, hi);
    }

    #[test]
    fn hand_computed_3x3() {
        // One 3×3 image 1..9, a 3×3 kernel of ones, padding 1: each output is the sum of its
        // neighbourhood; centre 45, corner 1+2+4+5 = 12.
        let mut g = geometry(1, 1, 1, [3, 3], [3, 3]);
        g.pad_begin = [1, 1];
        g.pad_end = [1, 1];
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut out = vec![0f32; 9];
        forward(&g, &x, &[1.0; 9], &[0.5], &mut out);
        assert_eq!(out, vec![12.5, 21.5, 16.5, 27.5, 45.5, 33.5, 24.5, 39.5, 28.5]);
        // dy = 1 everywhere: dx counts how many outputs see each pixel (4 at corners, 9 centre).
        let mut dx = vec![0f32; 9];
        input_grad(&g, &[1.0; 9], &[1.0; 9], &mut dx);
        assert_eq!(dx, vec![4.0, 6.0, 4.0, 6.0, 9.0, 6.0, 4.0, 6.0, 4.0]);
    }

    #[test]
    fn dense_matches_the_definition() {
        for batch in [1, 3] {
            check(geometry(batch, 1, 4, [7, 6], [3, 3]));
            let mut g = geometry(batch, 3, 5, [9, 8], [3, 3]);
            g.pad_begin = [1, 1];
            g.pad_end = [1, 1];
            check(g);
            g.stride = [2, 2];
            check(g);
            g.stride = [2, 1];
            g.pad_end = [0, 2];
            g.dilation = [1, 2];
            check(g);
            // MobileNetV2's stem: 3 → 8, 3×3, stride 2, padding 1.
            let mut stem = geometry(batch, 3, 8, [16, 16], [3, 3]);
            stem.stride = [2, 2];
            stem.pad_begin = [1, 1];
            stem.pad_end = [1, 1];
            check(stem);
            // 1×1 with and without the pointwise shortcut (stride 2 needs the unfold).
            let point = geometry(batch, 12, 7, [5, 4], [1, 1]);
            assert_eq!(point.kind(), Some(ConvKind::Pointwise));
            check(point);
            let mut strided = point;
            strided.stride = [2, 2];
            assert_eq!(strided.kind(), Some(ConvKind::Dense));
            check(strided);
            // A kernel wider than the input, padding making up the rest.
            let mut wide = geometry(batch, 2, 3, [2, 3], [3, 5]);
            wide.pad_begin = [1, 2];
            wide.pad_end = [1, 2];
            check(wide);
        }
    }

    /// A depthwise geometry: `c` channels, kernel `k`, then stride, padding (begin, end), dilation.
    fn depthwise(batch: usize, c: usize, hw: [usize; 2], k: [usize; 2], steps: [[usize; 2]; 4]) -> ConvGeometry {
        let [stride, pad_begin, pad_end, dilation] = steps;
        ConvGeometry { groups: c, stride, pad_begin, pad_end, dilation, ..geometry(batch, c, c, hw, k) }
    }

    #[test]
    fn depthwise_matches_the_definition() {
        for batch in [1, 2] {
            for stride in [[1, 1], [2, 2]] {
                for hw in [[7, 7], [8, 6], [4, 4], [1, 1]] {
                    let g = depthwise(batch, 6, hw, [3, 3], [stride, [1, 1], [1, 1], [1, 1]]);
                    assert_eq!(g.kind(), Some(ConvKind::Depthwise));
                    check(g);
                }
            }
            // Stride 3, and stride 2 with dilation: phases other than two.
            check(depthwise(batch, 3, [11, 10], [3, 3], [[3, 3], [1, 2], [1, 0], [1, 1]]));
            check(depthwise(batch, 3, [11, 10], [3, 3], [[2, 2], [2, 2], [2, 2], [2, 2]]));
            // A stride wider than the input (phases with no column at all).
            check(depthwise(batch, 2, [1, 1], [3, 3], [[3, 3], [1, 1], [1, 1], [1, 1]]));
            check(depthwise(batch, 2, [2, 5], [3, 3], [[4, 4], [1, 1], [1, 1], [1, 1]]));
            // A 5×3 kernel, asymmetric padding, horizontal dilation.
            check(depthwise(batch, 4, [9, 10], [5, 3], [[1, 1], [2, 0], [1, 1], [1, 2]]));
        }
    }

    #[test]
    fn what_is_not_covered() {
        let mut g = geometry(2, 4, 6, [5, 5], [3, 3]);
        g.groups = 2;
        assert_eq!(g.kind(), None, "grouped, not depthwise");
        g.groups = 4;
        assert_eq!(g.kind(), None, "a channel multiplier");
        let tiny = geometry(1, 1, 1, [2, 2], [3, 3]);
        assert_eq!(tiny.kind(), None, "kernel larger than the unpadded input");
        assert_eq!(geometry(0, 1, 1, [4, 4], [3, 3]).kind(), None, "empty batch");
        assert_eq!(geometry(1, 1, 1, [4, 4], [0, 3]).kind(), None, "empty kernel");
    }

    /// The copies compiled without AVX2 (what a CPU without it runs) give the same values.
    #[test]
    fn the_plain_path_matches_too() {
        let _plain = crate::PlainPath::force();
        dense_matches_the_definition();
        depthwise_matches_the_definition();
    }
}
