(() => {
  // Run by tests/web/a11y.py inside the page under test.
  const problems = [];
  const visible = (el) => {
    // checkVisibility also knows content-visibility (the body of a closed <details>).
    if (!el.checkVisibility({ visibilityProperty: true })) return false;
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0;
  };
  const describe = (el) => {
    const id = el.id ? `#${el.id}` : "";
    const cls = el.getAttribute("class") ? `.${el.getAttribute("class").split(" ")[0]}` : "";
    return `<${el.tagName.toLowerCase()}${id}${cls}> "${(el.textContent || "").trim().slice(0, 40)}"`;
  };
  const name = (el) => {
    const labelled = el.getAttribute("aria-labelledby");
    if (labelled) {
      return labelled.split(/\s+/).map((id) => document.getElementById(id)?.textContent || "").join(" ").trim();
    }
    if (el.getAttribute("aria-label")) return el.getAttribute("aria-label").trim();
    if (el.labels && el.labels.length) return [...el.labels].map((l) => l.textContent).join(" ").trim();
    if (el.tagName === "IMG") return el.getAttribute("alt") || "";
    if (el.closest("fieldset") && el.type === "radio") return "";
    // innerText leaves out what display:none hides (and so does the accessibility tree).
    return (el.innerText || "").trim() || el.getAttribute("title") || "";
  };

  for (const el of document.querySelectorAll("*")) {
    for (const attr of el.getAttributeNames()) {
      if (attr === "style") problems.push(`style attribute: ${describe(el)}`);
      if (attr.startsWith("on")) problems.push(`${attr} attribute: ${describe(el)}`);
    }
  }
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden" || !visible(el)) continue;
    const labelled = (el.labels && el.labels.length) || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
    if (!labelled) problems.push(`control without label: ${describe(el)}`);
  }
  for (const el of document.querySelectorAll("button, a[href], [role=button]")) {
    if (!visible(el)) continue;
    if (!name(el)) problems.push(`no accessible name: ${describe(el)}`);
    const box = el.getBoundingClientRect();
    if (!el.closest("p, li p, dd") && (box.width < 24 || box.height < 24)) {
      problems.push(`target smaller than 24px: ${describe(el)} ${box.width}x${box.height}`);
    }
  }
  for (const el of document.querySelectorAll("img")) {
    if (!el.hasAttribute("alt")) problems.push(`img without alt: ${el.src}`);
  }
  const h1s = [...document.querySelectorAll("h1")].filter(visible);
  if (h1s.length !== 1) problems.push(`${h1s.length} visible h1`);
  let previous = 0;
  for (const heading of document.querySelectorAll("h1, h2, h3, h4, h5, h6")) {
    if (!visible(heading)) continue;
    const level = Number(heading.tagName[1]);
    if (previous && level > previous + 1) problems.push(`heading level skipped: ${describe(heading)}`);
    previous = level;
  }
  if (!document.documentElement.lang) problems.push("no lang on <html>");
  if (!document.querySelector("main")) problems.push("no <main> landmark");
  if (!document.title.trim()) problems.push("empty title");
  // Reflow (WCAG 1.4.10): no sideways scrolling of the page (wide tables scroll in their box).
  if (document.scrollingElement.scrollWidth > window.innerWidth + 1) {
    problems.push(`page wider than the screen: ${document.scrollingElement.scrollWidth} > ${window.innerWidth}`);
  }

  // Contrast (WCAG AA): 4.5:1, or 3:1 for large text (>= 24px, or >= 18.66px bold).
  const parse = (value) => {
    const m = value.match(/rgba?\(([\d.]+)[, ]+([\d.]+)[, ]+([\d.]+)(?:[,/ ]+([\d.]+%?))?\)/);
    if (!m) return null;
    let alpha = m[4] === undefined ? 1 : m[4].endsWith("%") ? parseFloat(m[4]) / 100 : parseFloat(m[4]);
    return [Number(m[1]), Number(m[2]), Number(m[3]), alpha];
  };
  const luminance = ([r, g, b]) => {
    const c = [r, g, b].map((v) => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (el) => {
    let layers = [];
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const bg = parse(getComputedStyle(node).backgroundColor);
      if (bg && bg[3] > 0) {
        layers.push(bg);
        if (bg[3] >= 1) break;
      }
    }
    let color = [255, 255, 255];
    for (const layer of layers.reverse()) {
      color = color.map((c, i) => layer[i] * layer[3] + c * (1 - layer[3]));
    }
    return color;
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  while (walker.nextNode()) {
    const text = walker.currentNode;
    const el = text.parentElement;
    if (!text.textContent.trim() || seen.has(el) || !visible(el)) continue;
    seen.add(el);
    if (el.closest("[aria-hidden=true], svg, noscript")) continue;
    const style = getComputedStyle(el);
    const fg = parse(style.color);
    if (!fg) continue;
    const bg = background(el);
    const mixed = fg.slice(0, 3).map((c, i) => c * fg[3] + bg[i] * (1 - fg[3]));
    const [l1, l2] = [luminance(mixed), luminance(bg)].sort((a, b) => b - a);
    const ratio = (l1 + 0.05) / (l2 + 0.05);
    const size = parseFloat(style.fontSize);
    const bold = Number(style.fontWeight) >= 700;
    const large = size >= 24 || (bold && size >= 18.66);
    const needed = large ? 3 : 4.5;
    if (ratio < needed && !el.closest("button:disabled")) {
      problems.push(`contrast ${ratio.toFixed(2)} < ${needed}: ${describe(el)}`);
    }
  }
  return problems;
})
