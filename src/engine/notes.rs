//! What the page's measurements measure for a configuration, in a sentence each, so that a number
//! is never shown for a distribution it is not of. Both engines follow the configuration's class
//! and guidance: the heat map is `log p` of the field the shown flow follows (the class's, with
//! guidance the mix `v∅ + w·(v_c − v∅)`, whose divergence is the same mix) and the sliced W2
//! reading samples the shown flow's way (ODE, SDE or MeanFlow jumps) and compares with the chosen
//! class's target points. Where that is not the distribution shown, the page says so:
//! * the SDE: the heat map is the ODE's density, which the SDE shares in theory (same marginals);
//! * MeanFlow: `log p` needs an invertible flow; the heat map is the density of the model's
//!   instantaneous field `u(x, t, t)` integrated as an ODE (the limit of many jumps), not of the
//!   few-jump samples;
//! * a dataset source: no heat map (its density is not known in closed form).

use crate::config::{Config, Objective, OnOff, Sampler, Source};

/// The page's sentence under the heat map's switch, or None when it is plainly `log p` of the
/// samples shown.
pub fn heatmap_note(c: &Config) -> Option<String> {
    if c.source != Source::Gaussian {
        return Some(format!("No heat map with source {}: log p needs the Gaussian source's density in closed form.", c.source));
    }
    let mut parts = Vec::new();
    if let Some(class) = class_phrase(c) {
        parts.push(format!("The heat map is log p of {class}."));
    }
    if c.objective == Objective::MeanFlow {
        parts.push(format!(
            "MeanFlow: log p is of the model's instantaneous flow u(x, t, t), the limit of many jumps; the {} shown only approach it (closest at 64 jumps).",
            jumps(c.nfe)
        ));
    } else if c.sampler == Sampler::Sde && c.noise > 0.0 {
        parts.push("SDE: log p is of the ODE with the same field; the SDE's samples share its distribution up to the model's and the step's error.".to_string());
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The page's sentence about the sliced W2 reading, or None when it compares the shown flow's
/// samples with the whole target.
pub fn quality_note(c: &Config) -> Option<String> {
    let mut parts = Vec::new();
    if let (Some(class), Some(k)) = (class_phrase(c), c.class.index()) {
        let mut s = format!("Sliced W2 of samples of {class} against class {k}'s target points");
        if c.guidance > 1.0 {
            s.push_str(" (guidance above 1 narrows the samples on purpose, so the distance grows with w)");
        }
        s.push('.');
        parts.push(s);
    }
    if c.objective == Objective::MeanFlow {
        parts.push(format!("Readings use {} of the MeanFlow model; Compare solvers integrates its instantaneous flow u(x, t, t) as an ODE.", jumps(c.nfe)));
    } else if c.sampler == Sampler::Sde {
        parts.push(format!("Readings use {} Euler–Maruyama steps of the SDE (noise {}); Compare solvers uses the ODE.", c.nfe, c.noise));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// "class 3's flow" / "class 3's guided flow (w = 4)", or None without a class.
fn class_phrase(c: &Config) -> Option<String> {
    let k = c.class.index().filter(|_| c.conditional == OnOff::On)?;
    Some(if c.guidance != 1.0 { format!("class {k}'s guided flow (w = {})", c.guidance) } else { format!("class {k}'s flow") })
}

fn jumps(n: u32) -> String {
    if n == 1 { "1-jump samples".to_string() } else { format!("{n}-jump samples") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Dataset, SampleClass};

    #[test]
    fn notes_say_what_is_measured() {
        let plain = Config::default();
        assert_eq!((heatmap_note(&plain), quality_note(&plain)), (None, None), "the plain flow needs no note");
        let mut c = Config { dataset: Dataset::EightGaussians, conditional: OnOff::On, class: SampleClass::One(3), guidance: 4.0, ..Config::default() };
        assert!(heatmap_note(&c).unwrap().contains("class 3's guided flow (w = 4)"));
        let q = quality_note(&c).unwrap();
        assert!(q.contains("class 3's target points") && q.contains("narrows"), "{q}");
        c.guidance = 1.0;
        assert!(!quality_note(&c).unwrap().contains("narrows"));
        let mf = Config { objective: Objective::MeanFlow, nfe: 1, ..Config::default() };
        assert!(heatmap_note(&mf).unwrap().contains("instantaneous flow") && heatmap_note(&mf).unwrap().contains("1-jump"));
        assert!(quality_note(&mf).unwrap().contains("1-jump samples"));
        let sde = Config { sampler: Sampler::Sde, noise: 1.0, ..Config::default() };
        assert!(heatmap_note(&sde).unwrap().starts_with("SDE"));
        assert!(heatmap_note(&Config { noise: 0.0, ..sde.clone() }).is_none(), "noise 0 is the ODE");
        let src = Config { source: Source::Dataset(Dataset::Moons), ..Config::default() };
        assert!(heatmap_note(&src).unwrap().contains("No heat map"));
    }
}
