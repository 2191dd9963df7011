//! Closed sets named by strings — drivers, gateway kinds, export formats, call-graph modes,
//! profilers, load kinds.
//!
//! # Why
//!
//! Each set is a Rust enum deriving clap's [`ValueEnum`]: that derive is the one list of its
//! names, which `--help`, the shell completions and the man page show, and which the parser
//! checks, so "unknown driver" is written by clap and nowhere else. The same enums derive serde
//! with the same lowercase spelling, so case files and stored results keep their strings (and a
//! misspelt name in a case file is refused by serde with its line). [`impl_names!`] gives an
//! enum `Display` and `FromStr` (for library users who hold a string) from that same list, and
//! the registry of each set is a `match` on the enum.

use clap::ValueEnum;

use crate::{Error, Result};

/// The names of every value of `T`, in declaration order (hidden values left out).
pub fn names<T: ValueEnum>() -> Vec<String> {
    T::value_variants()
        .iter()
        .filter_map(|v| v.to_possible_value())
        .filter(|p| !p.is_hide_set())
        .map(|p| p.get_name().to_string())
        .collect()
}

/// The name of one value, as the command line, case files and results spell it.
pub fn name_of<T: ValueEnum>(value: &T) -> String {
    value
        .to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

/// Parses a name (or one of its aliases) into a value of `T`; a usage error naming `what` and
/// the accepted names otherwise.
pub fn parse<T: ValueEnum>(s: &str, what: &str) -> Result<T> {
    T::from_str(s, false).map_err(|_| {
        Error::Usage(format!(
            "unknown {what} \"{s}\": expected one of {}",
            names::<T>().join(", ")
        ))
    })
}

/// Implements `Display` and `FromStr` for enums deriving [`ValueEnum`], from its names:
/// `impl_names!(DriverKind => "driver")`.
macro_rules! impl_names {
    ($($t:ty => $what:literal),+ $(,)?) => {$(
        impl ::std::fmt::Display for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&$crate::names::name_of(self))
            }
        }
        impl ::std::str::FromStr for $t {
            type Err = $crate::Error;
            fn from_str(s: &str) -> $crate::Result<Self> {
                $crate::names::parse(s, $what)
            }
        }
    )+};
}
pub(crate) use impl_names;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Checks that serde spells every value of `T` as clap does, both ways.
    pub(crate) fn serde_matches_clap<T>()
    where
        T: ValueEnum + serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        for v in T::value_variants() {
            let name = name_of(v);
            assert!(!name.is_empty(), "{v:?} has no name");
            assert_eq!(
                serde_json::to_value(v).unwrap(),
                serde_json::Value::String(name.clone())
            );
            let back: T = serde_json::from_value(serde_json::Value::String(name)).unwrap();
            assert_eq!(&back, v);
        }
    }

    #[test]
    fn every_kind_is_spelt_the_same_by_clap_and_serde() {
        use crate::driver::DriverKind;
        use crate::report::export::ExportFormat;
        use crate::role::gateway::GatewayKind;
        use crate::role::load::wrk::LoadKind;
        use crate::role::profiler::{CallGraph, ProfilerTool};
        serde_matches_clap::<DriverKind>();
        serde_matches_clap::<GatewayKind>();
        serde_matches_clap::<ExportFormat>();
        serde_matches_clap::<CallGraph>();
        serde_matches_clap::<ProfilerTool>();
        serde_matches_clap::<LoadKind>();
        serde_matches_clap::<crate::manifest::InvocationKind>();
    }

    #[test]
    fn parse_accepts_names_and_aliases_and_lists_the_names_otherwise() {
        use crate::driver::DriverKind;
        use crate::role::profiler::CallGraph;
        assert_eq!("docker".parse::<DriverKind>().unwrap(), DriverKind::Docker);
        assert_eq!("frame-pointer".parse::<CallGraph>().unwrap(), CallGraph::Fp);
        let e = "vagrant".parse::<DriverKind>().unwrap_err().to_string();
        assert!(
            e.contains("unknown driver \"vagrant\": expected one of local, docker, terraform"),
            "{e}"
        );
        assert_eq!(DriverKind::Terraform.to_string(), "terraform");
    }
}
