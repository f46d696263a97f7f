"""Check that every built docs page reads without sideways scrolling.

    python scripts/docs_width.py [docs/_build/html] [--width 1280]

Renders each page of the built site in headless Chromium at the given window
width and lists every page, code block, table or diagram wider than the
window or than its own box (what a reader would have to scroll sideways).
Exit status 1 if there is one, 2 if Chromium is missing (``apt-get install
chromium``). Run it after ``make docs``; it changes nothing.
"""

from __future__ import annotations

import argparse
import html
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

PROBE = """<script>
window.addEventListener('load', function () {
  var out = [];
  var doc = document.documentElement;
  if (doc.scrollWidth > doc.clientWidth + 1) {
    out.push('the page: ' + doc.scrollWidth + ' px wide in a ' + doc.clientWidth + ' px window');
  }
  document.querySelectorAll('pre, table, object, img, svg, div.graphviz').forEach(function (el) {
    var right = el.getBoundingClientRect().right;
    if (el.scrollWidth > el.clientWidth + 1 || right > doc.clientWidth + 1) {
      out.push(el.tagName.toLowerCase() + ' (' + el.scrollWidth + ' px in ' + el.clientWidth
               + ' px): ' + (el.textContent || '').trim().slice(0, 50).replace(/\\s+/g, ' '));
    }
  });
  var report = document.createElement('pre');
  report.id = 'width-report';
  report.textContent = out.join('\\n');
  document.body.appendChild(report);
});
</script>"""


def browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def overflows(chromium: str, page: pathlib.Path, width: int) -> list[str]:
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--window-size={width},900",
        "--virtual-time-budget=3000",
        "--dump-dom",
        page.as_uri(),
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False).stdout
    found = re.search(r'<pre id="width-report">(.*?)</pre>', dom, re.S)
    if found is None:
        return ["(the page did not render)"]
    return [line for line in html.unescape(found.group(1)).splitlines() if line]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build", nargs="?", default="docs/_build/html", type=pathlib.Path)
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    chromium = browser()
    if chromium is None:
        print("docs_width: no Chromium found (apt-get install chromium)", file=sys.stderr)
        return 2
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        copy = pathlib.Path(tmp) / "html"
        shutil.copytree(args.build, copy)
        for page in sorted(copy.glob("*.html")):
            page.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
            problems = overflows(chromium, page, args.width)
            print(f"{page.name}: {'ok' if not problems else ''}")
            for problem in problems:
                print(f"    {problem}")
            failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
