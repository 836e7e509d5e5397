//! View modes (DESIGN.md §3.3): how the two views of a positive pair are made.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// How a pretraining run makes its views.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ViewMode {
    /// The SimCLR expert recipe (§3.1).
    Expert,
    /// The learned Viewmaker network (§3.2).
    Viewmaker,
    /// Expert operations, then the viewmaker, then normalisation (an extension).
    ExpertViewmaker,
    /// Identity views: a control.
    None,
    /// Expert views where the second view's overlay is re-drawn with probability `p`.
    Dropout(f64),
}

/// The accepted spellings, for error messages and `--help`.
pub const ACCEPTED: &str = "expert, viewmaker, expert+viewmaker, none, dropout:<p> with p in [0,1]";

impl ViewMode {
    /// Whether this mode trains a viewmaker network.
    pub fn uses_viewmaker(self) -> bool {
        matches!(self, Self::Viewmaker | Self::ExpertViewmaker)
    }

    /// Whether this mode applies the expert augmentations.
    pub fn uses_expert(self) -> bool {
        matches!(self, Self::Expert | Self::ExpertViewmaker | Self::Dropout(_))
    }

    /// Probability that the pair's overlay (or background noise) is re-drawn for the second view.
    pub fn overlay_redraw_p(self) -> f64 {
        match self {
            Self::Dropout(p) => p,
            _ => 0.0,
        }
    }

    /// A file-system friendly name for run directories (`dropout:0.5` → `dropout-0.5`).
    pub fn dir_name(self) -> String {
        self.to_string().replace(':', "-")
    }
}

impl fmt::Display for ViewMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Expert => f.write_str("expert"),
            Self::Viewmaker => f.write_str("viewmaker"),
            Self::ExpertViewmaker => f.write_str("expert+viewmaker"),
            Self::None => f.write_str("none"),
            Self::Dropout(p) => write!(f, "dropout:{p}"),
        }
    }
}

impl FromStr for ViewMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("unknown view mode `{s}`; accepted: {ACCEPTED}");
        match s.trim() {
            "expert" => Ok(Self::Expert),
            "viewmaker" => Ok(Self::Viewmaker),
            "expert+viewmaker" => Ok(Self::ExpertViewmaker),
            "none" => Ok(Self::None),
            other => {
                let p = other.strip_prefix("dropout:").or_else(|| other.strip_prefix("dropout-"));
                let p: f64 = p.ok_or_else(bad)?.parse().map_err(|_| bad())?;
                if !(0.0..=1.0).contains(&p) {
                    return Err(format!("view mode `{s}`: p = {p} is outside [0, 1]; accepted: {ACCEPTED}"));
                }
                Ok(Self::Dropout(p))
            }
        }
    }
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
        for s in ["expert", "viewmaker", "expert+viewmaker", "none", "dropout:0.5", "dropout:1", "dropout:0"] {
            let m: ViewMode = s.parse().unwrap();
            assert_eq!(m.to_string().parse::<ViewMode>().unwrap(), m, "{s}");
        }
        assert_eq!("dropout:0.25".parse::<ViewMode>().unwrap(), ViewMode::Dropout(0.25));
        assert_eq!(ViewMode::Dropout(0.5).dir_name(), "dropout-0.5");
        assert_eq!("dropout-0.5".parse::<ViewMode>().unwrap(), ViewMode::Dropout(0.5));
    }

    #[test]
    fn rejects_bad_forms_naming_accepted_ones() {
        for s in ["exper", "dropout:", "dropout:x", "dropout", ""] {
            let e = s.parse::<ViewMode>().unwrap_err();
            assert!(e.contains("accepted: expert, viewmaker"), "{s}: {e}");
        }
        let e = "dropout:1.5".parse::<ViewMode>().unwrap_err();
        assert!(e.contains("outside [0, 1]"), "{e}");
    }

    #[test]
    fn serde_uses_the_string_form() {
        let m = ViewMode::Dropout(0.5);
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"dropout:0.5\"");
        let e = serde_json::from_str::<ViewMode>("\"sideways\"").unwrap_err().to_string();
        assert!(e.contains("unknown view mode `sideways`"), "{e}");
    }
}
