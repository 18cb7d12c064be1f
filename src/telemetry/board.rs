//! Which board this is: device-tree model and `compatible`, the L4T release file, DMI
//! on x86, and whether a PCIe Edge TPU is present. The id picks the rail table and is
//! the `board` of every record (`jetson-agx-orin`, `raspberry-pi-5`, `x86-64`, ...).

use serde::Serialize;

use super::sysroot::{slug, SysRoot};

/// What is known about the board.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Board {
    /// Stable id, e.g. `jetson-orin-nano`.
    pub id: String,
    /// Device-tree `model`, or DMI vendor + product on x86.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Device-tree `compatible` strings, most specific first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub compatible: Vec<String>,
    /// L4T release from `/etc/nv_tegra_release`, e.g. `36.3.0`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub l4t: Option<String>,
    /// PCIe Edge TPUs (`apex_0`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub edge_tpus: Vec<String>,
    /// `config`, `device-tree`, `dmi`, `cpuinfo`, `none`.
    pub source: String,
}

/// Facts read from the root, before classification.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub dt_model: Option<String>,
    pub compatible: Vec<String>,
    pub l4t: Option<String>,
    pub dmi_vendor: Option<String>,
    pub dmi_product: Option<String>,
    pub cpu_vendor: Option<String>,
    pub edge_tpus: Vec<String>,
}

/// Reads the identifying files.
pub fn read_facts(root: &SysRoot) -> Facts {
    let dt = |f: &str| {
        root.read_string(&format!("/proc/device-tree/{f}"))
            .or_else(|_| root.read_string(&format!("/sys/firmware/devicetree/base/{f}")))
            .ok()
            .filter(|s| !s.is_empty())
    };
    let compatible = root
        .read_string_list("/proc/device-tree/compatible")
        .or_else(|_| root.read_string_list("/sys/firmware/devicetree/base/compatible"))
        .unwrap_or_default();
    let dmi = |f: &str| {
        root.read_string(&format!("/sys/class/dmi/id/{f}"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let cpu_vendor = root.read_string("/proc/cpuinfo").ok().and_then(|text| {
        text.lines()
            .find(|l| l.starts_with("vendor_id"))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_string())
    });
    Facts {
        dt_model: dt("model"),
        compatible,
        l4t: root
            .read_string("/etc/nv_tegra_release")
            .ok()
            .and_then(|t| parse_l4t(&t)),
        dmi_vendor: dmi("sys_vendor"),
        dmi_product: dmi("product_name"),
        cpu_vendor,
        edge_tpus: root
            .list("/sys/class/apex")
            .into_iter()
            .filter(|n| n.starts_with("apex_"))
            .collect(),
    }
}

/// Identifies the board. `override_id` (from `[device] board`) wins when set.
pub fn detect(root: &SysRoot, override_id: &str) -> Board {
    let facts = read_facts(root);
    let (id, source) = if !override_id.trim().is_empty() {
        (override_id.trim().to_string(), "config")
    } else {
        classify(&facts)
    };
    let model = facts
        .dt_model
        .clone()
        .or_else(|| match (&facts.dmi_vendor, &facts.dmi_product) {
            (Some(v), Some(p)) => Some(format!("{v} {p}")),
            (Some(v), None) => Some(v.clone()),
            (None, Some(p)) => Some(p.clone()),
            (None, None) => None,
        });
    Board {
        id,
        model,
        compatible: facts.compatible,
        l4t: facts.l4t,
        edge_tpus: facts.edge_tpus,
        source: source.to_string(),
    }
}

/// `# R35 (release), REVISION: 4.1, GCID: ...` -> `35.4.1`.
pub fn parse_l4t(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.contains("REVISION"))?;
    let major = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix('R'))
        .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))?;
    let rev = line
        .split(',')
        .find_map(|part| part.trim().strip_prefix("REVISION:"))?
        .trim();
    Some(format!("{major}.{rev}"))
}

/// Board id from the facts; also says which fact decided.
pub fn classify(f: &Facts) -> (String, &'static str) {
    let model = f.dt_model.as_deref().unwrap_or("");
    let compat = |needle: &str| f.compatible.iter().any(|c| c.contains(needle));
    let has = |needle: &str| model.contains(needle);
    let jetson = [
        (has("AGX Orin") || compat("nvidia,p3737"), "jetson-agx-orin"),
        (
            has("Orin NX") || compat("p3767-0000") || compat("p3767-0001"),
            "jetson-orin-nx",
        ),
        (
            has("Orin Nano")
                || compat("p3767-0003")
                || compat("p3767-0004")
                || compat("p3767-0005"),
            "jetson-orin-nano",
        ),
        (
            has("Xavier NX") || compat("nvidia,p3668"),
            "jetson-xavier-nx",
        ),
        (
            has("AGX Xavier") || model == "Jetson-AGX" || compat("nvidia,p2972"),
            "jetson-agx-xavier",
        ),
        (has("TX2 NX") || compat("nvidia,p3636"), "jetson-tx2-nx"),
        (
            has("TX2") || model == "quill" || compat("nvidia,p3310") || compat("nvidia,p3489"),
            "jetson-tx2",
        ),
        (has("TX1") || compat("nvidia,p2371-2180"), "jetson-tx1"),
        (has("Nano 2GB") || compat("nvidia,p3541"), "jetson-nano-2gb"),
        (has("Jetson Nano") || compat("nvidia,p3450"), "jetson-nano"),
        (compat("nvidia,tegra234"), "jetson-orin"),
        (compat("nvidia,tegra194"), "jetson-xavier"),
        (compat("nvidia,tegra186"), "jetson-tx2"),
        (compat("nvidia,tegra210"), "jetson-tegra210"),
    ];
    if let Some((_, id)) = jetson.iter().find(|(hit, _)| *hit) {
        return (id.to_string(), "device-tree");
    }
    if let Some(rest) = model.strip_prefix("Raspberry Pi ") {
        return (format!("raspberry-pi-{}", pi_variant(rest)), "device-tree");
    }
    if let Some(c) = f
        .compatible
        .iter()
        .find_map(|c| c.strip_prefix("raspberrypi,"))
    {
        // `raspberrypi,5-model-b` -> `5`
        let v = c.split("-model").next().unwrap_or(c);
        return (
            format!("raspberry-pi-{}", slug(v).replace('_', "-")),
            "device-tree",
        );
    }
    if has("Phanbell") || compat("phanbell") || (compat("fsl,imx8mq") && !f.edge_tpus.is_empty()) {
        return ("coral-dev-board".to_string(), "device-tree");
    }
    if has("Coral") {
        return (
            format!("coral-{}", slug(model).replace('_', "-")),
            "device-tree",
        );
    }
    if f.l4t.is_some() {
        return ("jetson".to_string(), "device-tree");
    }
    if !model.is_empty() {
        return (slug(model).replace('_', "-"), "device-tree");
    }
    if matches!(
        f.cpu_vendor.as_deref(),
        Some("GenuineIntel" | "AuthenticAMD" | "HygonGenuine")
    ) {
        return ("x86-64".to_string(), "cpuinfo");
    }
    if f.dmi_vendor.is_some() && cfg!(target_arch = "x86_64") {
        return ("x86-64".to_string(), "dmi");
    }
    ("unknown".to_string(), "none")
}

/// `4 Model B Rev 1.4` -> `4`; `Compute Module 4 Rev 1.0` -> `cm4`; `Zero 2 W Rev 1.0`
/// -> `zero-2-w`.
fn pi_variant(rest: &str) -> String {
    let cut = |s: &str| {
        let s = s.split(" Model").next().unwrap_or(s);
        s.split(" Rev").next().unwrap_or(s).trim().to_string()
    };
    if let Some(cm) = rest.strip_prefix("Compute Module ") {
        return format!("cm{}", slug(&cut(cm)).replace('_', "-"));
    }
    slug(&cut(rest)).replace('_', "-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(model: &str, compatible: &[&str]) -> Facts {
        Facts {
            dt_model: Some(model.to_string()),
            compatible: compatible.iter().map(|s| s.to_string()).collect(),
            ..Facts::default()
        }
    }

    #[test]
    fn jetson_boards() {
        let cases = [
            (
                "NVIDIA Jetson AGX Orin Developer Kit",
                &["nvidia,p3737-0000+p3701-0005", "nvidia,tegra234"][..],
                "jetson-agx-orin",
            ),
            (
                "NVIDIA Jetson Orin Nano Developer Kit",
                &["nvidia,p3768-0000+p3767-0005", "nvidia,tegra234"][..],
                "jetson-orin-nano",
            ),
            (
                "NVIDIA Orin NX Developer Kit",
                &["nvidia,p3768-0000+p3767-0000", "nvidia,tegra234"][..],
                "jetson-orin-nx",
            ),
            (
                "NVIDIA Jetson Xavier NX Developer Kit",
                &["nvidia,p3509-0000+p3668-0001", "nvidia,tegra194"][..],
                "jetson-xavier-nx",
            ),
            (
                "Jetson-AGX",
                &["nvidia,p2972-0000", "nvidia,tegra194"][..],
                "jetson-agx-xavier",
            ),
            (
                "NVIDIA Jetson Nano Developer Kit",
                &[
                    "nvidia,p3449-0000-b00+p3448-0000-b00",
                    "nvidia,jetson-nano",
                    "nvidia,tegra210",
                ][..],
                "jetson-nano",
            ),
            (
                "quill",
                &["nvidia,quill", "nvidia,tegra186"][..],
                "jetson-tx2",
            ),
        ];
        for (model, compat, want) in cases {
            assert_eq!(classify(&dt(model, compat)).0, want, "{model}");
        }
    }

    #[test]
    fn other_boards() {
        assert_eq!(
            classify(&dt(
                "Raspberry Pi 5 Model B Rev 1.0",
                &["raspberrypi,5-model-b", "brcm,bcm2712"]
            ))
            .0,
            "raspberry-pi-5"
        );
        assert_eq!(
            classify(&dt("Raspberry Pi 4 Model B Rev 1.4", &[])).0,
            "raspberry-pi-4"
        );
        assert_eq!(
            classify(&dt("Raspberry Pi 400 Rev 1.0", &[])).0,
            "raspberry-pi-400"
        );
        assert_eq!(
            classify(&dt("Raspberry Pi Compute Module 4 Rev 1.0", &[])).0,
            "raspberry-pi-cm4"
        );
        assert_eq!(
            classify(&dt(
                "Freescale i.MX8MQ Phanbell",
                &["fsl,imx8mq-phanbell", "fsl,imx8mq"]
            ))
            .0,
            "coral-dev-board"
        );
        let x86 = Facts {
            cpu_vendor: Some("GenuineIntel".into()),
            dmi_vendor: Some("LENOVO".into()),
            ..Facts::default()
        };
        assert_eq!(classify(&x86), ("x86-64".to_string(), "cpuinfo"));
        assert_eq!(classify(&Facts::default()).0, "unknown");
        assert_eq!(
            classify(&dt("Radxa ROCK 5B", &["radxa,rock-5b", "rockchip,rk3588"])).0,
            "radxa-rock-5b"
        );
    }

    #[test]
    fn l4t_release() {
        let t = "# R36 (release), REVISION: 3.0, GCID: 36923193, BOARD: generic, EABI: aarch64, DATE: Fri Jul 19 23:24:25 UTC 2024\n# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n";
        assert_eq!(parse_l4t(t).as_deref(), Some("36.3.0"));
        assert_eq!(parse_l4t("garbage"), None);
    }
}
