//! Types shared by the runtimes and the configuration, with no dependency on either:
//! which Edge TPU a run asks for ([`DeviceSelector`], validated by `config` and used by
//! the Edge TPU delegate), what a fixed batch axis does ([`FixedBatch`]), and the
//! opaque delegate handle passed between the TFLite interpreter library and a
//! delegate's own library.

use std::ffi::c_int;
use std::fmt;

use serde::{Deserialize, Serialize};

/// `TfLiteDelegate`: created and freed by the delegate's own library (libedgetpu), added
/// to interpreter options by the TFLite C library; only handled through pointers.
#[repr(C)]
pub struct TfLiteDelegate {
    _p: [u8; 0],
}

/// How an Edge TPU is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceType {
    /// PCIe / M.2 module or the Dev Board's SoM (`/dev/apex_N`).
    Pci,
    /// USB Accelerator.
    Usb,
}

impl DeviceType {
    /// `enum edgetpu_device_type`.
    pub fn to_c(self) -> c_int {
        match self {
            DeviceType::Pci => 0,
            DeviceType::Usb => 1,
        }
    }

    pub fn from_c(v: c_int) -> Option<DeviceType> {
        match v {
            0 => Some(DeviceType::Pci),
            1 => Some(DeviceType::Usb),
            _ => None,
        }
    }

    /// `pci` or `usb`, as in config and records.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::Pci => "pci",
            DeviceType::Usb => "usb",
        }
    }
}

/// One Edge TPU that libedgetpu lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub kind: DeviceType,
    /// `/dev/apex_0`, or the USB device's sysfs path.
    pub path: String,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.path)
    }
}

/// Which device `[tflite] edgetpu_device` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSelector {
    /// Empty: the first device listed.
    First,
    /// `N`: the N-th device listed, any type.
    Index(usize),
    /// `usb`, `pci` (N = 0), `usb:N`, `pci:N`: the N-th device of that type.
    Kind(DeviceType, usize),
}

impl DeviceSelector {
    /// Parses the config value. The error quotes it and lists the accepted forms.
    pub fn parse(s: &str) -> Result<DeviceSelector, String> {
        let bad = || {
            format!(
                "tflite.edgetpu_device `{s}` is not one of: \"\" (first), \"usb\", \"pci\", \"usb:N\", \"pci:N\", \"N\""
            )
        };
        let s = s.trim();
        if s.is_empty() {
            return Ok(DeviceSelector::First);
        }
        if let Ok(n) = s.parse::<usize>() {
            return Ok(DeviceSelector::Index(n));
        }
        let (kind, idx) = match s.split_once(':') {
            Some((k, n)) => (k, n.parse::<usize>().map_err(|_| bad())?),
            None => (s, 0),
        };
        let kind = match kind {
            "usb" => DeviceType::Usb,
            "pci" => DeviceType::Pci,
            _ => return Err(bad()),
        };
        Ok(DeviceSelector::Kind(kind, idx))
    }

    /// The device this selector names among `devices` (in libedgetpu's order).
    pub fn pick<'a>(&self, devices: &'a [Device]) -> Option<&'a Device> {
        match *self {
            DeviceSelector::First => devices.first(),
            DeviceSelector::Index(n) => devices.get(n),
            DeviceSelector::Kind(k, n) => devices.iter().filter(|d| d.kind == k).nth(n),
        }
    }
}

impl fmt::Display for DeviceSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSelector::First => write!(f, "the first Edge TPU"),
            DeviceSelector::Index(n) => write!(f, "Edge TPU #{n}"),
            DeviceSelector::Kind(k, n) => write!(f, "{} Edge TPU #{n}", k.as_str()),
        }
    }
}

/// `[protocol] fixed_batch`: what a batch other than the model's fixed batch does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FixedBatch {
    /// N / B calls of the model's batch B, one after another (`batch_mode = "sequential"`).
    #[default]
    Sequential,
    /// The configuration fails with an error naming the model's fixed batch.
    Fail,
}

impl FixedBatch {
    /// Parses the config value; the error lists the accepted ones.
    pub fn parse(s: &str) -> Result<FixedBatch, String> {
        match s {
            "sequential" => Ok(FixedBatch::Sequential),
            "fail" => Ok(FixedBatch::Fail),
            other => Err(format!(
                "fixed_batch `{other}` is not one of: \"sequential\", \"fail\""
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(kind: DeviceType, path: &str) -> Device {
        Device {
            kind,
            path: path.into(),
        }
    }

    #[test]
    fn selectors_parse() {
        assert_eq!(DeviceSelector::parse("").unwrap(), DeviceSelector::First);
        assert_eq!(
            DeviceSelector::parse("2").unwrap(),
            DeviceSelector::Index(2)
        );
        assert_eq!(
            DeviceSelector::parse("usb").unwrap(),
            DeviceSelector::Kind(DeviceType::Usb, 0)
        );
        assert_eq!(
            DeviceSelector::parse("pci:1").unwrap(),
            DeviceSelector::Kind(DeviceType::Pci, 1)
        );
        let e = DeviceSelector::parse("tpu:0").unwrap_err();
        assert!(e.contains("`tpu:0`") && e.contains("usb:N"), "{e}");
        assert!(DeviceSelector::parse("usb:x").is_err());
    }

    #[test]
    fn selectors_pick_by_type_and_index() {
        let devs = [
            dev(DeviceType::Pci, "/dev/apex_0"),
            dev(DeviceType::Usb, "/sys/bus/usb/devices/2-1"),
            dev(DeviceType::Usb, "/sys/bus/usb/devices/2-2"),
        ];
        let pick = |s: &str| DeviceSelector::parse(s).unwrap().pick(&devs).cloned();
        assert_eq!(pick("").unwrap().path, "/dev/apex_0");
        assert_eq!(pick("usb").unwrap().path, "/sys/bus/usb/devices/2-1");
        assert_eq!(pick("usb:1").unwrap().path, "/sys/bus/usb/devices/2-2");
        assert_eq!(pick("2").unwrap().path, "/sys/bus/usb/devices/2-2");
        assert!(pick("pci:1").is_none());
        assert!(pick("3").is_none());
    }
}
