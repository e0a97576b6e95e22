//! Building blocks shared by ClinicaDL's networks, as functional layers holding their tensors:
//! convolution and transposed convolution, batch normalisation (eval mode: running statistics),
//! instance normalisation (no tensors), linear, the activations, and the custom `PadMaxPool` /
//! `CropMaxUnpool` pair. Every forward is fallible (`f_` ops): a shape or
//! device error becomes an error, never a panic. Which layers a network chains, and under which
//! state_dict keys, is left to the network files.

use tch::{TchError, Tensor};

use super::state_dict::StateDict;

/// Spatial dimensionality of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    /// 2D: inputs `[B, C, H, W]`.
    Two,
    /// 3D: inputs `[B, C, D, H, W]`.
    Three,
}

impl Dim {
    /// From the length of `input_size` (channels included): 3 → 2D, 4 → 3D.
    pub fn from_input_size(input_size: &[usize]) -> Option<Dim> {
        match input_size.len() {
            3 => Some(Dim::Two),
            4 => Some(Dim::Three),
            _ => None,
        }
    }

    /// Number of spatial axes.
    pub fn axes(self) -> usize {
        match self {
            Dim::Two => 2,
            Dim::Three => 3,
        }
    }
}

/// Whether convolution weights on the CPU are stored channels-last (unless
/// `CLINICADL_RS_LAYOUT=contiguous`): libtorch then runs oneDNN's channels-last kernels, whose
/// activations stay channels-last through ReLU, padding and pooling (docs/ARCHITECTURE.md,
/// "Inference, rows and losses"). Same values up to float32 rounding (another summation order).
fn channels_last_on_cpu() -> bool {
    static CHOICE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CHOICE.get_or_init(|| {
        std::env::var("CLINICADL_RS_LAYOUT").map_or(true, |layout| layout != "contiguous")
    })
}

/// A convolution weight `[out, in, k…]` in the layout the CPU runs fastest: channels-last
/// (`[out, k…, in]` in memory, the same logical tensor), unless turned off; as it is on other
/// devices, or when it cannot be re-laid (a keys-and-shapes check's empty tensors).
fn cpu_layout(weight: Tensor) -> Tensor {
    let n = weight.dim() as i64;
    if weight.device() != tch::Device::Cpu
        || n < 3
        || weight.numel() == 0
        || !channels_last_on_cpu()
    {
        return weight;
    }
    // The values in `[out, k…, in]` order, then viewed as `[out, in, k…]` with channels-last
    // strides set explicitly (a permuted view would keep ambiguous strides when `in` is 1, and
    // libtorch would take the first layer for contiguous).
    let size = weight.size();
    let mut to = vec![0];
    to.extend(2..n);
    to.push(1);
    let mut strides = vec![0i64; size.len()];
    strides[1] = 1;
    let mut step = size[1];
    for axis in (2..size.len()).rev() {
        strides[axis] = step;
        step *= size[axis];
    }
    strides[0] = step;
    let relaid = || -> Result<Tensor, TchError> {
        let permuted = weight.f_permute(to.as_slice())?;
        // A new storage, its first element at offset 0 (the weight may be a view of the
        // mapped checkpoint, at any offset of its storage).
        let mut buffer = Tensor::f_empty(
            permuted.size().as_slice(),
            (weight.kind(), tch::Device::Cpu),
        )?;
        buffer.f_copy_(&permuted)?;
        buffer.f_as_strided(size.as_slice(), strides.as_slice(), 0)
    };
    relaid().unwrap_or(weight)
}

/// `ConvNd(in, out, k, stride, padding)` with optional bias.
#[derive(Debug)]
pub struct Conv {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: i64,
    padding: i64,
    dim: Dim,
}

impl Conv {
    /// Loads `<prefix>.weight` `[out, in, k…]` and, when `bias`, `<prefix>.bias` `[out]`.
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        sd: &StateDict,
        prefix: &str,
        dim: Dim,
        c_in: i64,
        c_out: i64,
        kernel: i64,
        stride: i64,
        padding: i64,
        bias: bool,
    ) -> Self {
        let mut shape = vec![c_out, c_in];
        shape.extend(std::iter::repeat_n(kernel, dim.axes()));
        let weight = sd.param(&format!("{prefix}.weight"), &shape);
        Conv {
            weight: cpu_layout(weight),
            bias: bias.then(|| sd.param(&format!("{prefix}.bias"), &[c_out])),
            stride,
            padding,
            dim,
        }
    }

    /// Folds an evaluation-mode batch normalisation that follows this convolution into its
    /// weights and bias (computed in float64): `conv` then `bn` becomes one convolution, which
    /// saves a pass over every activation. Equal up to float32 rounding.
    pub fn fold_batch_norm(&mut self, bn: &BatchNorm) -> Result<(), TchError> {
        let double = |t: &Tensor| t.f_to_kind(tch::Kind::Double);
        let scale = double(&bn.weight)?.f_div(&(double(&bn.running_var)? + 1e-5).f_sqrt()?)?;
        let c_out = scale.size()[0];
        let mut shape = vec![c_out];
        shape.extend(std::iter::repeat_n(1, self.weight.dim() - 1));
        let weight = double(&self.weight)?.f_mul(&scale.f_reshape(shape.as_slice())?)?;
        let bias = match &self.bias {
            Some(b) => double(b)?,
            None => Tensor::f_zeros([c_out], (tch::Kind::Double, self.weight.device()))?,
        };
        let bias = bias
            .f_sub(&double(&bn.running_mean)?)?
            .f_mul(&scale)?
            .f_add(&double(&bn.bias)?)?;
        self.weight = cpu_layout(weight.f_to_kind(tch::Kind::Float)?);
        self.bias = Some(bias.f_to_kind(tch::Kind::Float)?);
        Ok(())
    }

    /// Folds `norm` into this convolution when the weights are real (not a keys-and-shapes
    /// check); returns the batch normalisation still to apply, if any.
    pub fn fold_or_keep(&mut self, sd: &StateDict, norm: BatchNorm) -> Option<BatchNorm> {
        if sd.is_check_only() || self.fold_batch_norm(&norm).is_err() {
            Some(norm)
        } else {
            None
        }
    }

    /// Whether this convolution of `x` goes straight to oneDNN: float32 on the CPU in the
    /// channels-last layout. libtorch's own choice sends a single element of few values
    /// (`N·C·H·W <= 20480`: the last two blocks of Conv5_FC3 on a full-size image, which the
    /// CPU runs one at a time) to its unfold-and-multiply path instead: 4 to 10 times slower
    /// there (29 ms against 3 ms for the fourth block, on the bench's CPU), and its output
    /// contiguous. oneDNN is what libtorch runs for a batch, as ClinicaDL's are.
    fn onednn(&self, x: &Tensor) -> bool {
        channels_last_on_cpu()
            && x.device() == tch::Device::Cpu
            && x.kind() == tch::Kind::Float
            && self.weight.kind() == tch::Kind::Float
            && self.weight.device() == tch::Device::Cpu
    }

    /// `[B, in, …] → [B, out, …]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        if self.onednn(x) {
            let axes = self.dim.axes();
            return x.f_mkldnn_convolution(
                &self.weight,
                self.bias.as_ref(),
                vec![self.padding; axes],
                vec![self.stride; axes],
                vec![1; axes],
                1,
            );
        }
        match self.dim {
            Dim::Three => x.f_conv3d(
                &self.weight,
                self.bias.as_ref(),
                [self.stride; 3],
                [self.padding; 3],
                [1; 3],
                1,
            ),
            Dim::Two => x.f_conv2d(
                &self.weight,
                self.bias.as_ref(),
                [self.stride; 2],
                [self.padding; 2],
                [1; 2],
                1,
            ),
        }
    }
}

/// `BatchNormNd(c)` in evaluation mode (running statistics, eps 1e-5).
#[derive(Debug)]
pub struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
}

impl BatchNorm {
    /// Loads `<prefix>.{weight,bias,running_mean,running_var}` `[c]` and checks
    /// `<prefix>.num_batches_tracked`.
    pub fn load(sd: &StateDict, prefix: &str, c: i64) -> Self {
        sd.buffer(&format!("{prefix}.num_batches_tracked"));
        BatchNorm {
            weight: sd.param(&format!("{prefix}.weight"), &[c]),
            bias: sd.param(&format!("{prefix}.bias"), &[c]),
            running_mean: sd.param(&format!("{prefix}.running_mean"), &[c]),
            running_var: sd.param(&format!("{prefix}.running_var"), &[c]),
        }
    }

    /// `y = (x − mean)/sqrt(var + eps)·weight + bias`, channel-wise.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        x.f_batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            false,
            0.1,
            1e-5,
            true,
        )
    }
}

/// `Linear(in, out)`.
#[derive(Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// Loads `<prefix>.weight` `[out, in]` and `<prefix>.bias` `[out]`.
    pub fn load(sd: &StateDict, prefix: &str, c_in: i64, c_out: i64) -> Self {
        Linear {
            weight: sd.param(&format!("{prefix}.weight"), &[c_out, c_in]),
            bias: sd.param(&format!("{prefix}.bias"), &[c_out]),
        }
    }

    /// `[B, in] → [B, out]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        x.f_linear(&self.weight, Some(&self.bias))
    }
}

/// `ConvTransposeNd(in, out, k, stride, padding, output_padding)` with optional bias.
#[derive(Debug)]
pub struct ConvTranspose {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: i64,
    padding: i64,
    output_padding: Vec<i64>,
    dim: Dim,
}

impl ConvTranspose {
    /// Loads `<prefix>.weight` `[in, out, k…]` and, when `bias`, `<prefix>.bias` `[out]`;
    /// `output_padding` has one entry per spatial axis.
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        sd: &StateDict,
        prefix: &str,
        dim: Dim,
        c_in: i64,
        c_out: i64,
        kernel: i64,
        stride: i64,
        padding: i64,
        output_padding: &[i64],
        bias: bool,
    ) -> Self {
        let mut shape = vec![c_in, c_out];
        shape.extend(std::iter::repeat_n(kernel, dim.axes()));
        ConvTranspose {
            weight: sd.param(&format!("{prefix}.weight"), &shape),
            bias: bias.then(|| sd.param(&format!("{prefix}.bias"), &[c_out])),
            stride,
            padding,
            output_padding: output_padding.to_vec(),
            dim,
        }
    }

    /// `[B, in, n…] → [B, out, (n − 1)·stride − 2·padding + k + output_padding…]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let axes = self.dim.axes();
        let stride = vec![self.stride; axes];
        let padding = vec![self.padding; axes];
        let dilation = vec![1; axes];
        match self.dim {
            Dim::Three => x.f_conv_transpose3d(
                &self.weight,
                self.bias.as_ref(),
                stride.as_slice(),
                padding.as_slice(),
                self.output_padding.as_slice(),
                1,
                dilation.as_slice(),
            ),
            Dim::Two => x.f_conv_transpose2d(
                &self.weight,
                self.bias.as_ref(),
                stride.as_slice(),
                padding.as_slice(),
                self.output_padding.as_slice(),
                1,
                dilation.as_slice(),
            ),
        }
    }
}

/// `InstanceNormNd(c)` with PyTorch's defaults (no affine parameters, no running statistics, so
/// no state_dict keys): every sample and channel normalised by its own spatial mean and biased
/// variance, eps 1e-5, in evaluation mode too.
pub fn instance_norm(x: &Tensor) -> Result<Tensor, TchError> {
    x.f_instance_norm::<Tensor>(None, None, None, None, true, 0.1, 1e-5, true)
}

/// `LeakyReLU(negative_slope)`: `x` where `x > 0`, else `slope·x` (as PyTorch's kernel).
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor, TchError> {
    let scaled = x.f_mul_scalar(slope)?;
    x.f_where_self(&x.f_gt(0.0)?, &scaled)
}

/// ClinicaDL's `PadMaxPool3d`/`PadMaxPool2d` (kernel 2, stride 2): pads every odd spatial axis
/// with one zero *before* its first voxel, then a plain 2/2 max pooling. `[B, C, n…] →
/// [B, C, ceil(n/2)…]`.
pub fn pad_max_pool(x: &Tensor, dim: Dim) -> Result<Tensor, TchError> {
    let size = x.size();
    let spatial = &size[size.len() - dim.axes()..];
    // constant_pad_nd takes (before, after) pairs starting from the last axis.
    let pads: Vec<i64> = spatial.iter().rev().flat_map(|&n| [n % 2, 0]).collect();
    let padded;
    let input = if pads.iter().any(|&p| p != 0) {
        padded = x.f_constant_pad_nd(pads.as_slice())?;
        &padded
    } else {
        x
    };
    match dim {
        Dim::Three => input.f_max_pool3d([2; 3], [2; 3], [0; 3], [1; 3], false),
        Dim::Two => input.f_max_pool2d([2; 2], [2; 2], [0; 2], [1; 2], false),
    }
}

/// `PadMaxPool(ReLU(x))` computed as `ReLU(MaxPool(x))`, the max pooling as the maxima of pairs
/// along one axis after the other. The two are equal value for value: the ReLU is
/// nondecreasing, so the largest ReLU of a window is the ReLU of its largest value; a window's
/// maximum is the maximum of its pairs' maxima; and the zero padding of `PadMaxPool` (one leading
/// voxel on each odd axis) can only win against ReLU outputs that are all zero, so the window of
/// a leading voxel and its padding gives that voxel, then the ReLU. NaN propagates either way.
///
/// Cheaper than libtorch's pooling: the ReLU runs on an eighth of the values (a quarter in 2D),
/// with no padded copy, and the pairs' maxima are elementwise operations over long runs of
/// values in any layout, where libtorch's channels-last pooling walks the channels of each voxel
/// (scalar code for fewer channels than a vector holds: the 8 of Conv5_FC3's first block with
/// AVX-512) and also writes the argmax indices. On the bench's CPU: 9 ms instead of 16 ms for
/// the first block of a full-size image, 0.2 ms instead of 0.7 ms for a batch of 8 small ones.
/// Takes `x` by value: it is freed as soon as the first axis is halved.
pub fn relu_pad_max_pool(x: Tensor, dim: Dim) -> Result<Tensor, TchError> {
    let first = x.dim() - dim.axes();
    let mut h = x;
    for axis in first..first + dim.axes() {
        h = pair_maxima(&h, axis as i64)?;
    }
    h.f_relu_()
}

/// The maxima of consecutive pairs of `x` along `axis`, an odd axis keeping its first value alone
/// in front (the window `PadMaxPool` pads): `[n] → [ceil(n / 2)]`, in the layout of `x`.
fn pair_maxima(x: &Tensor, axis: i64) -> Result<Tensor, TchError> {
    let n = x.size()[axis as usize];
    let (lead, pairs) = (n % 2, n / 2);
    let left = x.f_slice(axis, lead, n, 2)?;
    let right = x.f_slice(axis, lead + 1, n, 2)?;
    if lead == 0 {
        return left.f_maximum(&right);
    }
    let out = x.f_narrow(axis, 0, pairs + 1)?.f_empty_like()?;
    out.f_narrow(axis, 0, 1)?
        .f_copy_(&x.f_narrow(axis, 0, 1)?)?;
    if pairs > 0 {
        let _ = left.f_maximum_out(&out.f_narrow(axis, 1, pairs)?, &right)?;
    }
    Ok(out)
}

/// The pooling state that `PadMaxPool` hands to the matching `CropMaxUnpool` of an
/// autoencoder: the argmax indices (flat index in each plane of the padded input) and the
/// leading padding of each spatial axis, in axis order (D, H, W or H, W).
#[derive(Debug)]
pub struct PoolState {
    indices: Tensor,
    pads: Vec<i64>,
}

/// `PadMaxPool` created with `return_indices=True, return_pad=True` (autoencoder encoders):
/// as [`pad_max_pool`], also returning what [`crop_max_unpool`] needs.
pub fn pad_max_pool_with_indices(x: &Tensor, dim: Dim) -> Result<(Tensor, PoolState), TchError> {
    let size = x.size();
    let spatial = &size[size.len().saturating_sub(dim.axes())..];
    let pads: Vec<i64> = spatial.iter().map(|&n| n % 2).collect();
    // constant_pad_nd takes (before, after) pairs starting from the last axis.
    let pad_arg: Vec<i64> = pads.iter().rev().flat_map(|&p| [p, 0]).collect();
    let padded = x.f_constant_pad_nd(pad_arg.as_slice())?;
    let (output, indices) = match dim {
        Dim::Three => padded.f_max_pool3d_with_indices([2; 3], [2; 3], [0; 3], [1; 3], false)?,
        Dim::Two => padded.f_max_pool2d_with_indices([2; 2], [2; 2], [0; 2], [1; 2], false)?,
    };
    Ok((output, PoolState { indices, pads }))
}

/// ClinicaDL's `CropMaxUnpool3d`/`CropMaxUnpool2d` (kernel 2, stride 2): max unpooling to twice
/// the size, zeros except at the recorded indices, then the leading padding of the matching
/// `PadMaxPool` cropped away. `[B, C, n…] → [B, C, 2n − pad…]`.
pub fn crop_max_unpool(x: &Tensor, state: &PoolState, dim: Dim) -> Result<Tensor, TchError> {
    let size = x.size();
    let spatial = &size[size.len().saturating_sub(dim.axes())..];
    let doubled: Vec<i64> = spatial.iter().map(|&n| 2 * n).collect();
    let mut output = match dim {
        Dim::Three => x.f_max_unpool3d(&state.indices, doubled.as_slice(), [2; 3], [0; 3])?,
        Dim::Two => x.f_max_unpool2d(&state.indices, doubled.as_slice())?,
    };
    let first_axis = (size.len() - dim.axes()) as i64;
    for (axis, (&pad, &n)) in state.pads.iter().zip(&doubled).enumerate() {
        if pad != 0 {
            output = output.f_narrow(first_axis + axis as i64, pad, n - pad)?;
        }
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad_max_pool_pads_in_front() {
        // One axis of 3 values: padded [0, a, b, c] → max(0, a), max(b, c).
        let x = Tensor::from_slice(&[5.0f32, -1.0, 7.0]).reshape([1, 1, 1, 3]);
        let x = x.expand([1, 1, 2, 3], false).contiguous();
        let y = pad_max_pool(&x, Dim::Two).unwrap();
        let (y2, state) = pad_max_pool_with_indices(&x, Dim::Two).unwrap();
        assert_eq!(y2.size(), [1, 1, 1, 2]);
        assert_eq!(state.pads, [0, 1]);
        assert_eq!(y.size(), [1, 1, 1, 2]);
        let v: Vec<f32> = Vec::<f32>::try_from(y.flatten(0, -1)).unwrap();
        assert_eq!(v, [5.0, 7.0]);
        let neg = Tensor::from_slice(&[-5.0f32, -1.0, -7.0])
            .reshape([1, 1, 1, 3])
            .expand([1, 1, 2, 3], false)
            .contiguous();
        let v: Vec<f32> =
            Vec::<f32>::try_from(pad_max_pool(&neg, Dim::Two).unwrap().flatten(0, -1)).unwrap();
        assert_eq!(v, [0.0, -1.0]);
    }

    #[test]
    fn channels_last_weights_hold_the_same_values() {
        for shape in [
            vec![4i64, 1, 3, 3, 3],
            vec![5, 3, 3, 3, 3],
            vec![6, 2, 3, 3],
        ] {
            let storage = Tensor::randn([1000], (tch::Kind::Float, tch::Device::Cpu));
            let numel: i64 = shape.iter().product();
            // A view at an offset of its storage, as the weights of a mapped checkpoint are.
            let weight = storage.narrow(0, 7, numel).view(shape.as_slice());
            let relaid = cpu_layout(weight.shallow_clone());
            assert!(relaid.equal(&weight), "{shape:?}");
            assert_eq!(relaid.stride()[1], 1, "{shape:?}: channels last");
        }
    }

    #[test]
    fn pooling_before_the_relu_gives_the_relu_before_the_pooling() {
        for (shape, dim) in [
            (vec![2i64, 3, 5, 4, 7], Dim::Three),
            (vec![1, 2, 6, 9], Dim::Two),
            (vec![1, 1, 1, 1, 1], Dim::Three),
            (vec![1, 8, 9, 10, 11], Dim::Three),
        ] {
            let x = Tensor::randn(shape.as_slice(), (tch::Kind::Float, tch::Device::Cpu));
            // Windows of negative values only (their ReLUs are all zero), and NaN.
            let _ = x.narrow(1, 0, 1).f_sub_scalar_(10.0).unwrap();
            let _ = x
                .flatten(0, -1)
                .narrow(0, x.numel() as i64 / 2, 1)
                .f_fill_(f64::NAN)
                .unwrap();
            let expected = pad_max_pool(&x.relu(), dim).unwrap();
            for layout in [x.shallow_clone(), cpu_layout(x.shallow_clone())] {
                let y = relu_pad_max_pool(layout.shallow_clone(), dim).unwrap();
                assert_eq!(
                    y.stride()[1] == 1,
                    layout.stride()[1] == 1,
                    "{shape:?}: same layout"
                );
                assert_eq!(y.size(), expected.size());
                assert!(y.isnan().equal(&expected.isnan()), "{shape:?}");
                assert!(
                    y.nan_to_num(0.0, None, None)
                        .equal(&expected.nan_to_num(0.0, None, None)),
                    "{shape:?}"
                );
            }
        }
    }

    #[test]
    fn pad_max_pool_3d_sizes() {
        let x = Tensor::zeros([2, 3, 17, 21, 19], (tch::Kind::Float, tch::Device::Cpu));
        assert_eq!(
            pad_max_pool(&x, Dim::Three).unwrap().size(),
            [2, 3, 9, 11, 10]
        );
    }

    #[test]
    fn unpool_restores_positions_and_crops() {
        // [5, -1, 7] → padded [0, 5, -1, 7] → maxima 5 (index 1) and 7 (index 3) → unpooled
        // [0, 5, 0, 7] → crop 1 → [5, 0, 7].
        let x = Tensor::from_slice(&[5.0f32, -1.0, 7.0]).reshape([1, 1, 1, 3]);
        let x = x.expand([1, 1, 2, 3], false).contiguous();
        let (pooled, state) = pad_max_pool_with_indices(&x, Dim::Two).unwrap();
        let y = crop_max_unpool(&pooled, &state, Dim::Two).unwrap();
        assert_eq!(y.size(), [1, 1, 2, 3]);
        let v: Vec<f32> = Vec::<f32>::try_from(y.flatten(0, -1)).unwrap();
        assert_eq!(v, [5.0, 0.0, 7.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn leaky_relu_slopes() {
        let x = Tensor::from_slice(&[-2.0f32, 0.0, 3.0]);
        let v: Vec<f32> = Vec::<f32>::try_from(leaky_relu(&x, 0.2).unwrap()).unwrap();
        assert_eq!(v, [-0.4, 0.0, 3.0]);
    }
}
