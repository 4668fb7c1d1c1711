//! Partial responses: the `fields` parameter (`nextPageToken,files(id,name)`, `user/emailAddress`,
//! `*`), validated against the resource's schema as Google does.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::errors::ApiError;

/// A field selection: name -> sub-selection (None = the whole value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mask(pub BTreeMap<String, Option<Mask>>);

/// What a level of a resource may contain.
pub enum Sub {
    Leaf,
    Obj(&'static [(&'static str, Sub)]),
    /// A map with free keys (appProperties, properties, exportLinks, ...).
    Free,
}

const USER: &[(&str, Sub)] = &[
    ("kind", Sub::Leaf),
    ("displayName", Sub::Leaf),
    ("photoLink", Sub::Leaf),
    ("me", Sub::Leaf),
    ("permissionId", Sub::Leaf),
    ("emailAddress", Sub::Leaf),
];

pub const FILE: &[(&str, Sub)] = &[
    ("kind", Sub::Leaf),
    ("id", Sub::Leaf),
    ("name", Sub::Leaf),
    ("mimeType", Sub::Leaf),
    ("description", Sub::Leaf),
    ("starred", Sub::Leaf),
    ("trashed", Sub::Leaf),
    ("explicitlyTrashed", Sub::Leaf),
    ("trashingUser", Sub::Obj(USER)),
    ("trashedTime", Sub::Leaf),
    ("parents", Sub::Leaf),
    ("properties", Sub::Free),
    ("appProperties", Sub::Free),
    ("spaces", Sub::Leaf),
    ("version", Sub::Leaf),
    ("webContentLink", Sub::Leaf),
    ("webViewLink", Sub::Leaf),
    ("iconLink", Sub::Leaf),
    ("hasThumbnail", Sub::Leaf),
    ("thumbnailLink", Sub::Leaf),
    ("thumbnailVersion", Sub::Leaf),
    ("viewedByMe", Sub::Leaf),
    ("viewedByMeTime", Sub::Leaf),
    ("createdTime", Sub::Leaf),
    ("modifiedTime", Sub::Leaf),
    ("modifiedByMeTime", Sub::Leaf),
    ("modifiedByMe", Sub::Leaf),
    ("sharedWithMeTime", Sub::Leaf),
    ("sharingUser", Sub::Obj(USER)),
    ("owners", Sub::Obj(USER)),
    ("driveId", Sub::Leaf),
    ("teamDriveId", Sub::Leaf),
    ("lastModifyingUser", Sub::Obj(USER)),
    ("shared", Sub::Leaf),
    ("ownedByMe", Sub::Leaf),
    ("capabilities", Sub::Free),
    ("viewersCanCopyContent", Sub::Leaf),
    ("copyRequiresWriterPermission", Sub::Leaf),
    ("writersCanShare", Sub::Leaf),
    ("permissions", Sub::Free),
    ("permissionIds", Sub::Leaf),
    ("hasAugmentedPermissions", Sub::Leaf),
    ("folderColorRgb", Sub::Leaf),
    ("originalFilename", Sub::Leaf),
    ("fullFileExtension", Sub::Leaf),
    ("fileExtension", Sub::Leaf),
    ("md5Checksum", Sub::Leaf),
    ("sha1Checksum", Sub::Leaf),
    ("sha256Checksum", Sub::Leaf),
    ("size", Sub::Leaf),
    ("quotaBytesUsed", Sub::Leaf),
    ("headRevisionId", Sub::Leaf),
    ("contentHints", Sub::Free),
    ("imageMediaMetadata", Sub::Free),
    ("videoMediaMetadata", Sub::Free),
    ("isAppAuthorized", Sub::Leaf),
    ("exportLinks", Sub::Free),
    ("shortcutDetails", Sub::Free),
    ("contentRestrictions", Sub::Free),
    ("resourceKey", Sub::Leaf),
    ("linkShareMetadata", Sub::Free),
    ("labelInfo", Sub::Free),
    ("inheritedPermissionsDisabled", Sub::Leaf),
    ("downloadRestrictions", Sub::Free),
];

pub const FILE_LIST: &[(&str, Sub)] = &[
    ("kind", Sub::Leaf),
    ("nextPageToken", Sub::Leaf),
    ("incompleteSearch", Sub::Leaf),
    ("files", Sub::Obj(FILE)),
];

const STORAGE_QUOTA: &[(&str, Sub)] = &[
    ("limit", Sub::Leaf),
    ("usage", Sub::Leaf),
    ("usageInDrive", Sub::Leaf),
    ("usageInDriveTrash", Sub::Leaf),
];

pub const ABOUT: &[(&str, Sub)] = &[
    ("kind", Sub::Leaf),
    ("user", Sub::Obj(USER)),
    ("storageQuota", Sub::Obj(STORAGE_QUOTA)),
    ("importFormats", Sub::Free),
    ("exportFormats", Sub::Free),
    ("maxImportSizes", Sub::Free),
    ("maxUploadSize", Sub::Leaf),
    ("appInstalled", Sub::Leaf),
    ("folderColorPalette", Sub::Leaf),
    ("driveThemes", Sub::Free),
    ("canCreateDrives", Sub::Leaf),
    ("canCreateTeamDrives", Sub::Leaf),
    ("teamDriveThemes", Sub::Free),
];

pub const DEFAULT_FILE: &str = "kind,id,name,mimeType";
pub const DEFAULT_LIST: &str = "kind,nextPageToken,incompleteSearch,files(kind,id,name,mimeType)";

fn invalid(sel: &str) -> ApiError {
    ApiError::invalid_parameter("fields", format!("Invalid field selection {sel}"))
}

impl Mask {
    /// Parse and validate a `fields` value against `schema`.
    pub fn parse(s: &str, schema: &'static [(&'static str, Sub)]) -> Result<Mask, ApiError> {
        let chars: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
        let mut pos = 0;
        let mask = parse_list(&chars, &mut pos).ok_or_else(|| invalid(s))?;
        if pos != chars.len() {
            return Err(invalid(s));
        }
        validate(&mask, schema)?;
        Ok(mask)
    }

    pub fn apply(&self, v: &Value) -> Value {
        match v {
            Value::Array(items) => Value::Array(items.iter().map(|i| self.apply(i)).collect()),
            Value::Object(obj) => {
                if self.0.contains_key("*") {
                    return v.clone();
                }
                let mut out = Map::new();
                for (key, sub) in &self.0 {
                    if let Some(val) = obj.get(key) {
                        let val = match sub {
                            None => val.clone(),
                            Some(m) => m.apply(val),
                        };
                        out.insert(key.clone(), val);
                    }
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }
}

fn merge(into: &mut Mask, key: String, sub: Option<Mask>) {
    match (into.0.get_mut(&key), sub) {
        (Some(existing), Some(sub)) => {
            if let Some(e) = existing {
                for (k, v) in sub.0 {
                    merge(e, k, v);
                }
            }
        }
        (Some(existing), None) => *existing = None,
        (None, sub) => {
            into.0.insert(key, sub);
        }
    }
}

fn parse_list(c: &[char], pos: &mut usize) -> Option<Mask> {
    let mut mask = Mask::default();
    loop {
        let (key, sub) = parse_item(c, pos)?;
        merge(&mut mask, key, sub);
        if *pos < c.len() && c[*pos] == ',' {
            *pos += 1;
            continue;
        }
        return Some(mask);
    }
}

fn parse_item(c: &[char], pos: &mut usize) -> Option<(String, Option<Mask>)> {
    let start = *pos;
    while *pos < c.len() && (c[*pos].is_alphanumeric() || c[*pos] == '_' || c[*pos] == '*') {
        *pos += 1;
    }
    if *pos == start {
        return None;
    }
    let name: String = c[start..*pos].iter().collect();
    if *pos < c.len() && c[*pos] == '/' {
        *pos += 1;
        let (k, sub) = parse_item(c, pos)?;
        let mut m = Mask::default();
        m.0.insert(k, sub);
        return Some((name, Some(m)));
    }
    if *pos < c.len() && c[*pos] == '(' {
        *pos += 1;
        let m = parse_list(c, pos)?;
        if *pos >= c.len() || c[*pos] != ')' {
            return None;
        }
        *pos += 1;
        return Some((name, Some(m)));
    }
    Some((name, None))
}

fn validate(mask: &Mask, schema: &'static [(&'static str, Sub)]) -> Result<(), ApiError> {
    for (key, sub) in &mask.0 {
        if key == "*" {
            continue;
        }
        let Some((_, kind)) = schema.iter().find(|(n, _)| n == key) else {
            return Err(invalid(key));
        };
        match (kind, sub) {
            (_, None) | (Sub::Free, _) => {}
            (Sub::Obj(inner), Some(m)) => validate(m, inner)?,
            (Sub::Leaf, Some(_)) => return Err(invalid(key)),
        }
    }
    Ok(())
}

/// Parse `fields` (or the default) and apply it to `value`.
pub fn select(
    value: &Value,
    fields: Option<&str>,
    default: &str,
    schema: &'static [(&'static str, Sub)],
) -> Result<Value, ApiError> {
    let mask = Mask::parse(fields.unwrap_or(default), schema)?;
    Ok(mask.apply(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_and_slash_selections() {
        let v = json!({"kind":"k","nextPageToken":"t","files":[{"id":"a","name":"n","size":"3"}]});
        let m = Mask::parse("nextPageToken,files(id,size)", FILE_LIST).unwrap();
        assert_eq!(
            m.apply(&v),
            json!({"nextPageToken":"t","files":[{"id":"a","size":"3"}]})
        );
        let m = Mask::parse("files/id", FILE_LIST).unwrap();
        assert_eq!(m.apply(&v), json!({"files":[{"id":"a"}]}));
        let m = Mask::parse("*", FILE_LIST).unwrap();
        assert_eq!(m.apply(&v), v);
        assert!(Mask::parse("files(bogus)", FILE_LIST).is_err());
        assert!(Mask::parse("files(id", FILE_LIST).is_err());
        assert!(Mask::parse("user(emailAddress,displayName),storageQuota", ABOUT).is_ok());
    }
}
