//! View modes (docs/PROTOCOL.md §3.3): how the two views of a positive pair are made — a base
//! view family, optionally with the feature-dropout modifier on top.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The view family each view of a pair goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseViews {
    /// The SimCLR expert recipe (§3.1).
    Expert,
    /// The learned Viewmaker network (§3.2).
    Viewmaker,
    /// Expert operations, then the viewmaker, then normalisation (an extension).
    ExpertViewmaker,
    /// Identity views: a control.
    None,
    /// The photometric expert ops plus pixel noise, no crop and no flip: an image family that
    /// keeps an overlay in place in both views (§3.3).
    Colour,
}

impl BaseViews {
    /// Every base family, in the order `--help` lists them.
    pub const ALL: [Self; 5] = [Self::Expert, Self::Viewmaker, Self::ExpertViewmaker, Self::None, Self::Colour];

    fn name(self) -> &'static str {
        match self {
            Self::Expert => "expert",
            Self::Viewmaker => "viewmaker",
            Self::ExpertViewmaker => "expert+viewmaker",
            Self::None => "none",
            Self::Colour => "colour",
        }
    }
}

/// How a pretraining run makes its views: a base family for each view and, with `dropout`, the
/// feature-dropout modifier — with that probability the second view's overlay (or background
/// noise) is re-drawn independently, destroying the overlay label between the two views.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewMode {
    /// The family both views go through.
    pub base: BaseViews,
    /// Probability of re-drawing the second view's overlay (`None`: always shared).
    pub dropout: Option<f64>,
}

/// The accepted spellings, for error messages and `--help`.
pub const ACCEPTED: &str = "expert, viewmaker, expert+viewmaker, none, colour (images only), each optionally followed by +dropout:<p> \
     with p in [0,1]; dropout:<p> alone means expert+dropout:<p>";

impl From<BaseViews> for ViewMode {
    fn from(base: BaseViews) -> Self {
        Self { base, dropout: None }
    }
}

impl ViewMode {
    /// The expert views with the feature-dropout modifier (`dropout:<p>`).
    pub fn dropout(p: f64) -> Self {
        Self { base: BaseViews::Expert, dropout: Some(p) }
    }

    /// This mode with the feature-dropout modifier at `p`.
    pub fn with_dropout(self, p: f64) -> Self {
        Self { dropout: Some(p), ..self }
    }

    /// Whether this mode trains a viewmaker network.
    pub fn uses_viewmaker(self) -> bool {
        matches!(self.base, BaseViews::Viewmaker | BaseViews::ExpertViewmaker)
    }

    /// Whether this mode applies the expert augmentations.
    pub fn uses_expert(self) -> bool {
        matches!(self.base, BaseViews::Expert | BaseViews::ExpertViewmaker)
    }

    /// Probability that the pair's overlay (or background noise) is re-drawn for the second view.
    pub fn overlay_redraw_p(self) -> f64 {
        self.dropout.unwrap_or(0.0)
    }

    /// A file-system friendly name for run directories (`dropout:0.5` → `dropout-0.5`).
    pub fn dir_name(self) -> String {
        self.to_string().replace(':', "-")
    }
}

impl fmt::Display for ViewMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.base, self.dropout) {
            (base, None) => f.write_str(base.name()),
            // The original spelling of expert views with dropout, kept so run folders stay put.
            (BaseViews::Expert, Some(p)) => write!(f, "dropout:{p}"),
            (base, Some(p)) => write!(f, "{}+dropout:{p}", base.name()),
        }
    }
}

impl FromStr for ViewMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("unknown view mode `{s}`; accepted: {ACCEPTED}");
        let s = s.trim();
        // `dropout-<p>` is the directory spelling of `dropout:<p>`.
        let split = |marker: &str| -> Option<(&str, &str)> {
            let (base, p) = s.rsplit_once(&format!("dropout{marker}"))?;
            Some((base.strip_suffix('+').unwrap_or(base), p))
        };
        let (base, p) = match split(":").or_else(|| split("-")) {
            Some((base, p)) if base.is_empty() || s.contains("+dropout") => (base, Some(p)),
            _ => (s, None),
        };
        let base = match base {
            "" if p.is_some() => BaseViews::Expert,
            name => *BaseViews::ALL.iter().find(|b| b.name() == name).ok_or_else(bad)?,
        };
        let dropout = match p {
            None => None,
            Some(p) => {
                p.parse::<f64>().map_err(|_| bad())?;
                Some(parse_dropout(p).map_err(|e| format!("view mode `{s}`: {e}; accepted: {ACCEPTED}"))?)
            }
        };
        Ok(Self { base, dropout })
    }
}

/// Parses a feature-dropout probability `p` (of `dropout:<p>`, or a tool's `--dropout`): a number
/// in [0, 1]. The one check of that range, so every command line refuses the same values.
pub fn parse_dropout(text: &str) -> Result<f64, String> {
    let p: f64 = text.trim().parse().map_err(|_| format!("`{text}` is not a number (a probability in [0, 1])"))?;
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("p = {p} is outside [0, 1]"));
    }
    Ok(p)
}

impl Serialize for ViewMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ViewMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_and_round_trips() {
        for s in [
            "expert",
            "viewmaker",
            "expert+viewmaker",
            "none",
            "dropout:0.5",
            "dropout:1",
            "dropout:0",
            "viewmaker+dropout:0.25",
            "expert+viewmaker+dropout:1",
            "none+dropout:0.5",
            "colour",
            "colour+dropout:0.5",
        ] {
            let m: ViewMode = s.parse().unwrap();
            assert_eq!(m.to_string(), s);
            assert_eq!(m.to_string().parse::<ViewMode>().unwrap(), m, "{s}");
            assert_eq!(m.dir_name().parse::<ViewMode>().unwrap(), m, "{s} from its directory name");
        }
        assert_eq!("dropout:0.25".parse::<ViewMode>().unwrap(), ViewMode::dropout(0.25));
        assert_eq!("expert+dropout:0.25".parse::<ViewMode>().unwrap(), ViewMode::dropout(0.25));
        assert_eq!(ViewMode::dropout(0.5).dir_name(), "dropout-0.5");
        assert_eq!("dropout-0.5".parse::<ViewMode>().unwrap(), ViewMode::dropout(0.5));
        let vm = "viewmaker+dropout:0.5".parse::<ViewMode>().unwrap();
        assert_eq!((vm.base, vm.dropout), (BaseViews::Viewmaker, Some(0.5)));
        assert!(vm.uses_viewmaker() && !vm.uses_expert() && vm.overlay_redraw_p() == 0.5);
        assert_eq!(ViewMode::from(BaseViews::Expert).overlay_redraw_p(), 0.0);
        let colour = "colour+dropout:0.5".parse::<ViewMode>().unwrap();
        assert_eq!((colour.base, colour.dropout), (BaseViews::Colour, Some(0.5)));
        assert_eq!(colour.dir_name(), "colour+dropout-0.5");
        assert_eq!("colour+dropout-0.5".parse::<ViewMode>().unwrap(), colour);
        assert!(!colour.uses_viewmaker() && !colour.uses_expert() && colour.overlay_redraw_p() == 0.5);
        assert!(ACCEPTED.contains("colour"));
    }

    #[test]
    fn rejects_bad_forms_naming_accepted_ones() {
        for s in ["exper", "dropout:", "dropout:x", "dropout", "", "sideways+dropout:0.5", "expert+"] {
            let e = s.parse::<ViewMode>().unwrap_err();
            assert!(e.contains("accepted: expert, viewmaker"), "{s}: {e}");
        }
        for s in ["dropout:1.5", "viewmaker+dropout:-1"] {
            let e = s.parse::<ViewMode>().unwrap_err();
            assert!(e.contains("outside [0, 1]"), "{e}");
        }
    }

    #[test]
    fn serde_uses_the_string_form() {
        let m = ViewMode::dropout(0.5);
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"dropout:0.5\"");
        let e = serde_json::from_str::<ViewMode>("\"sideways\"").unwrap_err().to_string();
        assert!(e.contains("unknown view mode `sideways`"), "{e}");
    }
}
