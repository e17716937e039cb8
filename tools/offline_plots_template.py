"""Build `.dvc/plots/offline.html`, the page template that makes `dvc plots` work offline.

DVC's default page loads vega, vega-lite and vega-embed from a CDN, so without internet its
interactive charts silently vanish. This template carries their minified builds inline (with
their BSD-3-Clause licences), at the versions DVC 3.x itself loads, and has no `{scripts}`
placeholder, which is where DVC would put its CDN tags. `.dvc/config` points
`plots.html_template` at it, so `dvc plots show` and `dvc plots diff` use it by default.

Usage: `make plots-template`, i.e. `python tools/offline_plots_template.py
.dvc/plots/offline.html` (fetches the packages with `npm pack`, which needs npm).
"""

import argparse
import subprocess
import tarfile
import tempfile
from pathlib import Path

# (npm package, version, its minified browser build); the order is the load order.
LIBRARIES = (
    ("vega", "5.20.2", "build/vega.min.js"),
    ("vega-lite", "5.2.0", "build/vega-lite.min.js"),
    ("vega-embed", "6.18.2", "build/vega-embed.min.js"),
)

# DVC's own page (dvc_render.html.PAGE_HTML) with the scripts inline instead of `{scripts}`.
PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <title>DVC Plot</title>
{scripts}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def read_member(archive: Path, member: str) -> str:
    """A text file from an `npm pack` tarball, whose files sit under `package/`."""
    with tarfile.open(archive) as tar:
        handle = tar.extractfile(f"package/{member}")
        if handle is None:
            raise FileNotFoundError(f"{archive} has no package/{member}")
        return handle.read().decode("utf-8")


def inline_script(folder: Path, name: str, version: str, build: str) -> str:
    """One library as a <script> element, preceded by its name, version and licence."""
    archive = folder / f"{name}-{version}.tgz"
    code = read_member(archive, build)
    licence = read_member(archive, "LICENSE")
    if "</script" in code or "-->" in licence:
        raise ValueError(f"{name} {version} cannot be inlined as it is")
    header = f"<!-- {name} {version} ({build}), npm package '{name}':\n{licence}-->"
    return f"{header}\n<script>{code}</script>"


def build_page(folder: Path) -> str:
    scripts = "\n".join(inline_script(folder, *library) for library in LIBRARIES)
    page = PAGE.format(scripts=scripts)
    if "{scripts}" in page or page.count("{plot_divs}") != 1:
        raise ValueError("a library holds one of DVC's template placeholders")
    return page


def fetch_packages(folder: Path) -> None:
    """The libraries' tarballs from the npm registry, as `<name>-<version>.tgz`."""
    specs = [f"{name}@{version}" for name, version, _ in LIBRARIES]
    subprocess.run(["npm", "pack", "--silent", *specs], cwd=folder, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="the template to write")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        fetch_packages(Path(folder))
        page = build_page(Path(folder))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(page, encoding="utf-8")


if __name__ == "__main__":
    main()
