//! Every script in scripts/ and its folders answers `--help` with its usage and exits 0.

use std::process::Command;

#[test]
fn every_script_answers_help_and_does_nothing_else() {
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts"
    ))];
    let mut paths = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                paths.push(path);
            }
        }
    }
    let mut seen = 0;
    for path in paths {
        let interpreter = match path.extension().and_then(|e| e.to_str()) {
            Some("sh") => "bash",
            Some("py") => "python3",
            _ => continue,
        };
        let out = Command::new(interpreter)
            .arg(&path)
            .arg("--help")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {text}{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.lines().count() >= 2, "{}: {text}", path.display());
        seen += 1;
    }
    assert!(seen >= 16, "{seen} scripts");
}
