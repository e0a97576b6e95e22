//! The one registry of ClinicaDL 1.6.1's architectures: every name `maps.json` may give, whether
//! clinicadl-rs runs it or refuses it (and why), and its family. Pure data, no tensors:
//! [`super::Spec`] turns an architecture and `maps.json` into the checked description of a
//! network.
//!
//! ClinicaDL: `clinicadl.utils.network` (`__init__.py` lists the classes).

/// The family of a network: what its output is and how its loss is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Classification/regression CNNs: logits `[B, output_size]`.
    Cnn,
    /// Autoencoders: a reconstruction, loss `criterion(reconstruction, input)`.
    Autoencoder,
    /// Variational autoencoders: a reconstruction, mu and logvar; three loss components.
    Vae,
    /// GeneratorUNet: a reconstruction, loss `criterion(reconstruction, input)`.
    UNet,
}

/// An architecture of ClinicaDL 1.6.1, by its `maps.json` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// `Conv5_FC3`.
    Conv5Fc3,
    /// `Conv4_FC3`.
    Conv4Fc3,
    /// `Stride_Conv5_FC3`.
    StrideConv5Fc3,
    /// `resnet18` (2D, 3 channels).
    ResNet18,
    /// `ResNet3D` (fixed size).
    ResNet3D,
    /// `SqueezeExcitationCNN` (fixed size).
    SqueezeExcitationCnn,
    /// `RandomArchitecture`.
    RandomArchitecture,
    /// `AE_Conv5_FC3`.
    AeConv5Fc3,
    /// `AE_Conv4_FC3`.
    AeConv4Fc3,
    /// `Vanilla3DdenseVAE`.
    Vanilla3DdenseVae,
    /// `CVAE_3D`.
    Cvae3D,
    /// `CVAE_3D_half`.
    Cvae3DHalf,
    /// `CVAE_3D_final_conv`.
    Cvae3DFinalConv,
    /// `GeneratorUNet`.
    GeneratorUNet,
    /// `CAE_half` (refused).
    CaeHalf,
    /// `Vanilla3DspacialVAE` (refused).
    Vanilla3DspacialVae,
    /// `VanillaDenseVAE` (refused).
    VanillaDenseVae,
    /// `VanillaSpatialVAE` (refused).
    VanillaSpatialVae,
    /// `Conv5_FC3_SSDA` (refused).
    Conv5Fc3Ssda,
}

/// Every architecture, the supported ones first, in the order of the README's table.
pub const ALL: [Architecture; 19] = [
    Architecture::Conv5Fc3,
    Architecture::Conv4Fc3,
    Architecture::StrideConv5Fc3,
    Architecture::ResNet18,
    Architecture::ResNet3D,
    Architecture::SqueezeExcitationCnn,
    Architecture::RandomArchitecture,
    Architecture::AeConv5Fc3,
    Architecture::AeConv4Fc3,
    Architecture::Vanilla3DdenseVae,
    Architecture::Cvae3D,
    Architecture::Cvae3DHalf,
    Architecture::Cvae3DFinalConv,
    Architecture::GeneratorUNet,
    Architecture::CaeHalf,
    Architecture::Vanilla3DspacialVae,
    Architecture::VanillaDenseVae,
    Architecture::VanillaSpatialVae,
    Architecture::Conv5Fc3Ssda,
];

impl Architecture {
    /// The `maps.json` name.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Conv5Fc3 => "Conv5_FC3",
            Architecture::Conv4Fc3 => "Conv4_FC3",
            Architecture::StrideConv5Fc3 => "Stride_Conv5_FC3",
            Architecture::ResNet18 => "resnet18",
            Architecture::ResNet3D => "ResNet3D",
            Architecture::SqueezeExcitationCnn => "SqueezeExcitationCNN",
            Architecture::RandomArchitecture => "RandomArchitecture",
            Architecture::AeConv5Fc3 => "AE_Conv5_FC3",
            Architecture::AeConv4Fc3 => "AE_Conv4_FC3",
            Architecture::Vanilla3DdenseVae => "Vanilla3DdenseVAE",
            Architecture::Cvae3D => "CVAE_3D",
            Architecture::Cvae3DHalf => "CVAE_3D_half",
            Architecture::Cvae3DFinalConv => "CVAE_3D_final_conv",
            Architecture::GeneratorUNet => "GeneratorUNet",
            Architecture::CaeHalf => "CAE_half",
            Architecture::Vanilla3DspacialVae => "Vanilla3DspacialVAE",
            Architecture::VanillaDenseVae => "VanillaDenseVAE",
            Architecture::VanillaSpatialVae => "VanillaSpatialVAE",
            Architecture::Conv5Fc3Ssda => "Conv5_FC3_SSDA",
        }
    }

    /// The architecture `maps.json` names so, if ClinicaDL 1.6.1 has it.
    pub fn from_name(name: &str) -> Option<Architecture> {
        ALL.into_iter().find(|a| a.name() == name)
    }

    /// Why clinicadl-rs refuses the architecture, for those it does not run.
    pub fn refusal(self) -> Option<&'static str> {
        match self {
            Architecture::CaeHalf => Some(
                "its constructor always fails in ClinicaDL 1.6.1, so no MAPS can contain a trained one",
            ),
            Architecture::Vanilla3DspacialVae
            | Architecture::VanillaDenseVae
            | Architecture::VanillaSpatialVae => {
                Some("its constructor always fails in ClinicaDL 1.6.1")
            }
            Architecture::Conv5Fc3Ssda => {
                Some("semi-supervised domain adaptation networks are not supported by predict")
            }
            _ => None,
        }
    }

    /// The family of a supported architecture (`None` for the refused ones).
    pub fn family(self) -> Option<Family> {
        Some(match self {
            Architecture::Conv5Fc3
            | Architecture::Conv4Fc3
            | Architecture::StrideConv5Fc3
            | Architecture::ResNet18
            | Architecture::ResNet3D
            | Architecture::SqueezeExcitationCnn
            | Architecture::RandomArchitecture => Family::Cnn,
            Architecture::AeConv5Fc3 | Architecture::AeConv4Fc3 => Family::Autoencoder,
            Architecture::Vanilla3DdenseVae
            | Architecture::Cvae3D
            | Architecture::Cvae3DHalf
            | Architecture::Cvae3DFinalConv => Family::Vae,
            Architecture::GeneratorUNet => Family::UNet,
            Architecture::CaeHalf
            | Architecture::Vanilla3DspacialVae
            | Architecture::VanillaDenseVae
            | Architecture::VanillaSpatialVae
            | Architecture::Conv5Fc3Ssda => return None,
        })
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_read_back_and_refused_ones_have_no_family() {
        for architecture in ALL {
            assert_eq!(
                Architecture::from_name(architecture.name()),
                Some(architecture)
            );
            assert_eq!(
                architecture.family().is_none(),
                architecture.refusal().is_some(),
                "{architecture}"
            );
        }
        assert_eq!(ALL.iter().filter(|a| a.refusal().is_none()).count(), 14);
        assert_eq!(Architecture::from_name("Conv9_FC9"), None);
    }
}
