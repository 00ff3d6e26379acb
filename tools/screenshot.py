#!/usr/bin/env python3
"""Screenshot a page in headless Chromium (Debian's chromium and chromium-driver, driven by selenium).

    mstvsc-recv --listen :5000 --http :8080 &
    mstvsc-relay --listen :6000 --to 127.0.0.1:5000 --loss 30% &
    mstvsc-send --input sample --loop --size 320x240 --to 127.0.0.1:6000 &
    python tools/screenshot.py http://127.0.0.1:8080/ docs/img/preview.png --wait 20

This is how the README's picture of the browser preview is made.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("out", type=Path, help="PNG file to write")
    p.add_argument("--wait", type=float, default=10.0, help="seconds to let the page update first")
    p.add_argument("--size", default="1000x560", help="window size WxH")
    args = p.parse_args()
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        print("screenshot: needs chromium and chromium-driver (apt-get install chromium chromium-driver)",
              file=sys.stderr)
        return 2
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={args.size.replace('x', ',')}"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        driver.get(args.url)
        time.sleep(args.wait)
        driver.save_screenshot(str(args.out))
    finally:
        driver.quit()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
