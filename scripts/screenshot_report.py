"""Screenshot the top of a report.html in headless Chromium (Selenium; Debian's chromium and chromium-driver, no
network), for the README's picture of the committed report:

    python scripts/screenshot_report.py results/report.html results/report.png
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1600, help="pixels from the top of the page")
    args = parser.parse_args(argv)
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not args.report.is_file() or not binary or not driver:
        print(f"error: need {args.report} (a file), chromium and chromedriver on PATH (apt-get install chromium "
              "chromium-driver)", file=sys.stderr)
        return 2
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--no-first-run",
                f"--window-size={args.width},{args.height}", f"--user-data-dir={tempfile.mkdtemp()}"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    try:
        browser.get(args.report.resolve().as_uri())
        tmp = args.png.with_name(f".{args.png.name}.tmp.png")
        if not browser.save_screenshot(str(tmp)):
            print("error: Chromium did not write the screenshot", file=sys.stderr)
            return 1
        tmp.replace(args.png)  # the README's picture is whole or absent
    finally:
        browser.quit()
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
