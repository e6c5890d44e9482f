//! `cargo run -p sluice-query --bin gen-glue [-- --check] [TEMPLATE] [SCHEMAS_DIR]`
//!
//! Regenerates the Glue block of template.yaml (between the `# BEGIN generated: glue tables`
//! and `# END generated: glue tables` markers) from the schema files. With `--check`, changes
//! nothing and exits 1 when the block is out of date. Defaults: the workspace's template.yaml
//! and schemas/.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use sluice_query::template::{self, Check, REGENERATE_COMMAND};
use sluice_schemas::Registry;

fn main() -> anyhow::Result<()> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut check = false;
    let mut paths = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                println!(
                    "usage: gen-glue [--check] [TEMPLATE (default template.yaml)] [SCHEMAS_DIR (default schemas/)]"
                );
                return Ok(());
            }
            flag if flag.starts_with('-') => bail!("unknown option {flag}"),
            path => paths.push(PathBuf::from(path)),
        }
    }
    if paths.len() > 2 {
        bail!("expected at most two paths: TEMPLATE SCHEMAS_DIR");
    }
    let template_path = paths.first().cloned().unwrap_or_else(|| workspace.join("template.yaml"));
    let schemas_dir = paths.get(1).cloned().unwrap_or_else(|| workspace.join("schemas"));

    let registry =
        Registry::from_dir(&schemas_dir).with_context(|| format!("loading schemas from {}", schemas_dir.display()))?;
    let current =
        std::fs::read_to_string(&template_path).with_context(|| format!("reading {}", template_path.display()))?;
    if check {
        return match template::check(&current, &registry)? {
            Check::UpToDate => {
                println!("{}: Glue block up to date", template_path.display());
                Ok(())
            }
            Check::Stale => bail!("{}: Glue block out of date; run `{REGENERATE_COMMAND}`", template_path.display()),
        };
    }
    let rendered = template::render(&current, &registry)?;
    if rendered == current {
        println!("{}: Glue block already up to date", template_path.display());
        return Ok(());
    }
    // Write a sibling file, then rename: the template is never half-written.
    let tmp = template_path.with_extension("yaml.gen-glue.tmp");
    std::fs::write(&tmp, &rendered).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &template_path).with_context(|| format!("replacing {}", template_path.display()))?;
    println!("{}: Glue block regenerated", template_path.display());
    Ok(())
}
