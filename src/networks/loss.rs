//! The criterion of a run, resolved once from `maps.json` `loss`, the task and the network
//! ([`Criterion`]): a plain PyTorch loss with its default parameters and mean reduction
//! ([`Loss`]), a VAE loss with `maps.json`'s weights, or CVAE_3D's own loss. The reported loss is
//! the float32 sum of the per-batch losses (docs/ARCHITECTURE.md, "Losses").
//!
//! ClinicaDL: `TaskManager.get_criterion` of the classification, regression and reconstruction
//! managers, and `compute_outputs_and_loss` of the VAE classes.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tch::{Reduction, TchError, Tensor};

use super::Spec;
use super::vae::{Combination, CvaeKind, VAE_LOSSES, VaeLoss};
use crate::maps::json::{MapsJson, Task};

/// How the loss of a batch is computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Criterion {
    /// `criterion(output, label)` for classification and regression,
    /// `criterion(reconstruction, input)` for autoencoders and the U-Net.
    Plain(Loss),
    /// A VAE criterion, its components combined with `maps.json` `recons_weight` and `kl_weight`.
    Vae {
        /// The criterion.
        loss: VaeLoss,
        /// How the network's class combines the components.
        combination: Combination,
        /// `recons_weight`.
        recons_weight: f64,
        /// `kl_weight`.
        kl_weight: f64,
    },
    /// CVAE_3D's own loss, whatever `maps.json` says.
    Cvae3D,
}

impl Criterion {
    /// The criterion of `maps.json` `loss` (null: the task's default) for the network `spec`.
    pub fn resolve(maps: &MapsJson, spec: &Spec) -> Result<Criterion> {
        Criterion::named(maps.loss.as_deref(), maps, spec)
    }

    /// The criterion `name` (null: the task's default) for the network `spec` of `maps`; a
    /// criterion that does not suit the network is refused (ClinicaDL fails on the first batch).
    pub fn named(name: Option<&str>, maps: &MapsJson, spec: &Spec) -> Result<Criterion> {
        if maps.task != Task::Reconstruction {
            return Loss::from_name(maps.task, name).map(Criterion::Plain);
        }
        let name = name.unwrap_or("MSELoss");
        let architecture = spec.architecture();
        let vae_loss = VaeLoss::from_name(name);
        match (spec, vae_loss) {
            (
                Spec::Cvae {
                    kind: CvaeKind::Full,
                    ..
                },
                _,
            ) => Ok(Criterion::Cvae3D),
            (Spec::DenseVae(_) | Spec::Cvae { .. }, Some(loss)) => {
                let (recons_weight, kl_weight) = vae_weights(maps)?;
                Ok(Criterion::Vae {
                    loss,
                    combination: match spec {
                        Spec::DenseVae(_) => Combination::BaseVae,
                        _ => Combination::Cvae,
                    },
                    recons_weight,
                    kl_weight,
                })
            }
            (Spec::DenseVae(_) | Spec::Cvae { .. }, None) => bail!(
                "maps.json `loss` is `{name}`, but {architecture} needs a VAE loss ({}): ClinicaDL 1.6.1 calls the criterion with (input, reconstruction, mu, logvar), which fails for `{name}`",
                VAE_LOSSES.join(", ")
            ),
            (_, Some(_)) => bail!(
                "maps.json `loss` is `{name}`, a VAE loss, but {architecture} is not a VAE: ClinicaDL 1.6.1 calls the criterion with (reconstruction, input) only, which fails for `{name}`"
            ),
            (_, None) => Loss::from_name(Task::Reconstruction, Some(name))
                .map(Criterion::Plain)
                .map_err(|_| {
                    let allowed: Vec<String> = REGRESSION
                        .iter()
                        .chain(VAE_LOSSES.iter())
                        .map(|n| format!("'{n}'"))
                        .collect();
                    anyhow::anyhow!(
                        "maps.json `loss` is `{name}`: Reconstruction loss must be chosen in [{}]",
                        allowed.join(", ")
                    )
                }),
        }
    }
}

/// `recons_weight` and `kl_weight` of `maps.json` (numbers; 1 when absent).
fn vae_weights(maps: &MapsJson) -> Result<(f64, f64)> {
    let number = |key: &str| match maps.raw.get(key) {
        None | Some(Value::Null) => Ok(1.0),
        Some(v) => v
            .as_f64()
            .with_context(|| format!("maps.json `{key}` must be a number, found {v}")),
    };
    Ok((number("recons_weight")?, number("kl_weight")?))
}

/// A supported criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// `CrossEntropyLoss` (classification).
    CrossEntropy,
    /// `MultiMarginLoss` p=1, margin=1 (classification).
    MultiMargin,
    /// `MSELoss`.
    Mse,
    /// `L1Loss`.
    L1,
    /// `KLDivLoss` (input as log-probabilities, `log_target=False`).
    KlDiv,
    /// `BCEWithLogitsLoss`.
    BceWithLogits,
    /// `HuberLoss` delta=1.
    Huber,
    /// `SmoothL1Loss` beta=1.
    SmoothL1,
}

const CLASSIFICATION: &[&str] = &["CrossEntropyLoss", "MultiMarginLoss"];
/// The plain criteria of regression and reconstruction (ClinicaDL's order).
const REGRESSION: &[&str] = &[
    "MSELoss",
    "L1Loss",
    "KLDivLoss",
    "BCEWithLogitsLoss",
    "HuberLoss",
    "SmoothL1Loss",
];

impl Loss {
    /// The criterion named `name` for `task` (name null → the task default).
    pub fn from_name(task: Task, name: Option<&str>) -> Result<Loss> {
        let (allowed, default, label) = match task {
            Task::Classification => (CLASSIFICATION, "CrossEntropyLoss", "Classification"),
            Task::Regression => (REGRESSION, "MSELoss", "Regression"),
            Task::Reconstruction => (REGRESSION, "MSELoss", "Reconstruction"),
        };
        let name = name.unwrap_or(default);
        if !allowed.contains(&name) {
            let list: Vec<String> = allowed.iter().map(|n| format!("'{n}'")).collect();
            bail!(
                "maps.json `loss` is `{name}`: {label} loss must be chosen in [{}]",
                list.join(", ")
            );
        }
        Ok(match name {
            "CrossEntropyLoss" => Loss::CrossEntropy,
            "MultiMarginLoss" => Loss::MultiMargin,
            "MSELoss" => Loss::Mse,
            "L1Loss" => Loss::L1,
            "KLDivLoss" => Loss::KlDiv,
            "BCEWithLogitsLoss" => Loss::BceWithLogits,
            "HuberLoss" => Loss::Huber,
            _ => Loss::SmoothL1,
        })
    }

    /// The mean loss of a batch: `output` `[B, C]` logits with int64 `target` `[B]` for
    /// classification, `[B, 1]` outputs with float32 `target` `[B, 1]` for regression.
    pub fn compute(self, output: &Tensor, target: &Tensor) -> Result<Tensor, TchError> {
        match self {
            Loss::CrossEntropy => {
                output.f_cross_entropy_loss::<Tensor>(target, None, Reduction::Mean, -100, 0.0)
            }
            Loss::MultiMargin => multi_margin(output, target),
            Loss::Mse => output.f_mse_loss(target, Reduction::Mean),
            Loss::L1 => output.f_l1_loss(target, Reduction::Mean),
            Loss::KlDiv => output.f_kl_div(target, Reduction::Mean, false),
            Loss::BceWithLogits => output.f_binary_cross_entropy_with_logits::<Tensor>(
                target,
                None,
                None,
                Reduction::Mean,
            ),
            Loss::Huber => output.f_huber_loss(target, Reduction::Mean, 1.0),
            Loss::SmoothL1 => output.f_smooth_l1_loss(target, Reduction::Mean, 1.0),
        }
    }
}

/// `MultiMarginLoss(p=1, margin=1)`: mean over the batch of
/// `Σ_{i≠y} max(0, 1 − x[y] + x[i]) / C` (tch has no binding for it).
fn multi_margin(output: &Tensor, target: &Tensor) -> Result<Tensor, TchError> {
    let classes = output.size().last().copied().unwrap_or(1) as f64;
    let index = target.f_unsqueeze(1)?;
    let x_y = output.f_gather(1, &index, false)?;
    let margins = (output.f_sub(&x_y)? + 1.0).f_clamp_min(0.0)?;
    let margins = margins.f_scatter_value(1, &index, 0.0)?;
    margins
        .f_sum_dim_intlist(1, false, tch::Kind::Float)?
        .f_div_scalar(classes)?
        .f_mean(tch::Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_errors() {
        assert_eq!(
            Loss::from_name(Task::Classification, None).unwrap(),
            Loss::CrossEntropy
        );
        assert_eq!(
            Loss::from_name(Task::Regression, Some("HuberLoss")).unwrap(),
            Loss::Huber
        );
        let e = Loss::from_name(Task::Classification, Some("MSELoss"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "Classification loss must be chosen in ['CrossEntropyLoss', 'MultiMarginLoss']"
            ),
            "{e}"
        );
    }

    #[test]
    fn multi_margin_value() {
        // x = [0.1, 0.2, 0.4, 0.8], y = 3 → (0.3 + 0.4 + 0.6) / 4 = 0.325 (PyTorch docs example)
        let out = Tensor::from_slice(&[0.1f32, 0.2, 0.4, 0.8]).reshape([1, 4]);
        let v = Loss::MultiMargin
            .compute(&out, &Tensor::from_slice(&[3i64]))
            .unwrap()
            .double_value(&[]);
        assert!((v - 0.325).abs() < 1e-6, "{v}");
    }

    #[test]
    fn cross_entropy_value() {
        let out = Tensor::from_slice(&[0.0f32, 0.0]).reshape([1, 2]);
        let target = Tensor::from_slice(&[1i64]);
        let v = Loss::CrossEntropy
            .compute(&out, &target)
            .unwrap()
            .double_value(&[]);
        assert!((v - std::f64::consts::LN_2).abs() < 1e-6);
    }
}
