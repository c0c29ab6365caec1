//! Figures of the flow-matching literature, by name: each preset is a configuration (a demo-page
//! hash) plus the views it turns on, and the paper it reproduces. The one list: the page's preset
//! menu and the widget's `preset` attribute read it through `presets_json` (exported to JS).
//! Presets that belong side by side (OT against independent coupling, the three paths) name
//! their companions in `compare`.

use crate::config::Config;

/// One named figure.
#[derive(Clone, Copy, Debug)]
pub struct Preset {
    /// The `preset` attribute's value.
    pub name: &'static str,
    /// A short title for a menu.
    pub title: &'static str,
    /// What it shows, in a sentence.
    pub about: &'static str,
    /// The paper, as a citation.
    pub paper: &'static str,
    /// Where to read it.
    pub url: &'static str,
    /// The configuration, as a demo-page hash (fields not named keep their defaults).
    pub config: &'static str,
    /// Widget layers turned on (`trajectories`, `field`, `target`, `loss`); the others are off.
    pub views: &'static [&'static str],
    /// Presets shown beside this one in a comparison (its own name included).
    pub compare: &'static [&'static str],
}

const LIPMAN: &str = "Lipman, Chen, Ben-Hamu, Nickel, Le. Flow Matching for Generative Modeling. ICLR 2023";
const LIPMAN_URL: &str = "https://arxiv.org/abs/2210.02747";
const TONG: &str = "Tong, Fatras, Malkin, Huguet, Zhang, Rector-Brooks, Wolf, Bengio. Improving and generalizing flow-based generative models with minibatch optimal transport. TMLR 2024";
const TONG_URL: &str = "https://arxiv.org/abs/2302.00482";
const COUPLINGS: &[&str] = &["icfm-8gaussians-moons", "otcfm-8gaussians-moons"];
const PATHS: &[&str] = &["path-linear", "path-cosine", "path-vp"];

/// Every preset, in menu order. New methods (reflow, guidance, MeanFlow) add theirs here.
pub static PRESETS: &[Preset] = &[
    Preset {
        name: "cfm-moons",
        title: "Flow matching: noise to two moons",
        about: "Conditional flow matching with the linear (optimal-transport) path from a standard normal to two moons.",
        paper: LIPMAN,
        url: LIPMAN_URL,
        config: "dataset=moons&source=gaussian&path=linear&coupling=independent",
        views: &["trajectories", "target", "loss"],
        compare: &[],
    },
    Preset {
        name: "icfm-8gaussians-moons",
        title: "Independent coupling: 8 Gaussians to moons",
        about: "Source and target points paired at random (I-CFM): the learned paths cross and bend.",
        paper: TONG,
        url: TONG_URL,
        config: "source=8gaussians&dataset=moons&coupling=independent&path=linear&batch=128",
        views: &["trajectories", "target"],
        compare: COUPLINGS,
    },
    Preset {
        name: "otcfm-8gaussians-moons",
        title: "OT coupling: 8 Gaussians to moons",
        about: "Source and target paired by minibatch optimal transport (OT-CFM): nearly straight paths, good samples in few solver steps.",
        paper: TONG,
        url: TONG_URL,
        config: "source=8gaussians&dataset=moons&coupling=ot&path=linear&batch=128",
        views: &["trajectories", "target"],
        compare: COUPLINGS,
    },
    Preset {
        name: "path-linear",
        title: "Linear (rectified-flow) path",
        about: "x_t = t·x1 + (1 - (1 - σmin)·t)·x0: straight conditional paths at constant speed.",
        paper: LIPMAN,
        url: LIPMAN_URL,
        config: "dataset=8gaussians&source=gaussian&path=linear",
        views: &["trajectories", "target"],
        compare: PATHS,
    },
    Preset {
        name: "path-cosine",
        title: "Cosine path",
        about: "x_t = sin(πt/2)·x1 + cos(πt/2)·x0: the trigonometric interpolant, curved conditional paths.",
        paper: "Albergo, Vanden-Eijnden. Building Normalizing Flows with Stochastic Interpolants. ICLR 2023",
        url: "https://arxiv.org/abs/2209.15571",
        config: "dataset=8gaussians&source=gaussian&path=cosine",
        views: &["trajectories", "target"],
        compare: PATHS,
    },
    Preset {
        name: "path-vp",
        title: "Variance-preserving (diffusion) path",
        about: "The VP diffusion schedule as a flow-matching path: most of the motion happens late.",
        paper: LIPMAN,
        url: LIPMAN_URL,
        config: "dataset=8gaussians&source=gaussian&path=vp",
        views: &["trajectories", "target"],
        compare: PATHS,
    },
];

/// The layers a preset may turn on (the widget's layer attributes).
pub const VIEWS: &[&str] = &["trajectories", "field", "target", "loss"];

/// The preset called `name`.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name.trim().to_ascii_lowercase())
}

impl Preset {
    /// The configuration: defaults with the preset's hash applied.
    pub fn to_config(&self) -> Config {
        let mut c = Config::default();
        let errors = c.apply_query(self.config);
        debug_assert!(errors.is_empty(), "preset {}: {errors:?}", self.name);
        c
    }
}

/// `a|b|c`, for messages.
pub fn choices() -> String {
    PRESETS.iter().map(|p| p.name).collect::<Vec<_>>().join("|")
}

/// Every preset as a JSON array of objects with the fields of [`Preset`] (for JS).
pub fn presets_json() -> String {
    let s = crate::json::json_string;
    let list = |v: &[&str]| format!("[{}]", v.iter().map(|x| s(x)).collect::<Vec<_>>().join(","));
    let items: Vec<String> = PRESETS
        .iter()
        .map(|p| {
            format!(
                "{{\"name\":{},\"title\":{},\"about\":{},\"paper\":{},\"url\":{},\"config\":{},\"views\":{},\"compare\":{}}}",
                s(p.name),
                s(p.title),
                s(p.about),
                s(p.paper),
                s(p.url),
                s(p.config),
                list(p.views),
                list(p.compare)
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_a_valid_configuration_with_known_views() {
        let mut names = std::collections::HashSet::new();
        for p in PRESETS {
            assert!(names.insert(p.name), "{} twice", p.name);
            let mut c = Config::default();
            let errors = c.apply_query(p.config);
            assert!(errors.is_empty(), "{}: {errors:?}", p.name);
            c.check_solver().unwrap();
            if c.coupling == crate::config::Coupling::Ot {
                assert!(c.batch <= crate::cpu::coupling::OT_MAX_BATCH, "{}: OT batch", p.name);
            }
            for v in p.views {
                assert!(VIEWS.contains(v), "{}: unknown view {v}", p.name);
            }
            for other in p.compare {
                assert!(preset(other).is_some(), "{}: compares with unknown {other}", p.name);
            }
            assert!(p.compare.is_empty() || p.compare.contains(&p.name), "{}: a comparison includes itself", p.name);
            assert!(p.url.starts_with("https://arxiv.org/abs/"), "{}", p.name);
        }
        // The pairs differ in exactly the setting they compare.
        let (i, o) = (preset("icfm-8gaussians-moons").unwrap().to_config(), preset("otcfm-8gaussians-moons").unwrap().to_config());
        assert_eq!(i.changed_fields(&o).iter().map(|f| f.name).collect::<Vec<_>>(), ["coupling"]);
        let (l, v) = (preset("path-linear").unwrap().to_config(), preset("path-vp").unwrap().to_config());
        assert_eq!(l.changed_fields(&v).iter().map(|f| f.name).collect::<Vec<_>>(), ["path"]);
    }

    #[test]
    fn json_lists_every_preset() {
        let j = presets_json();
        assert!(j.starts_with("[{\"name\":\"cfm-moons\"") && j.ends_with("}]"), "{j}");
        assert_eq!(j.matches("\"name\":").count(), PRESETS.len());
        assert!(j.contains("\"compare\":[\"icfm-8gaussians-moons\",\"otcfm-8gaussians-moons\"]"));
        assert_eq!(preset(" OTCFM-8gaussians-moons").map(|p| p.name), Some("otcfm-8gaussians-moons"));
        assert!(choices().contains("path-vp"));
    }
}
