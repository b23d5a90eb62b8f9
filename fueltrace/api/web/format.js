// Numbers with units, times in Beijing time, dates. The API answers litres (at 20 °C when a
// name ends in _20_l), °C, kg/m³, Pa and UTC ISO-8601 times; the page shows them in the
// reader's language with their units.

import { getLang, unitLabel } from "./i18n.js";

export const TZ = "Asia/Shanghai";

export function locale() {
  return getLang() === "zh" ? "zh-CN" : "en-GB";
}

const numberFormats = new Map();

/** `value` with at most `max` decimals (and at least `min`), grouped in thousands. */
export function num(value, max = 2, min = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const key = `${locale()}/${max}/${min}`;
  let fmt = numberFormats.get(key);
  if (!fmt) {
    fmt = new Intl.NumberFormat(locale(), {
      maximumFractionDigits: max, minimumFractionDigits: min, signDisplay: "negative",
    });
    numberFormats.set(key, fmt);
  }
  return fmt.format(value).replace("-", "−");
}

/** Litres: whole litres from 1,000 L (what a gauge can tell), else two decimals. */
export function litres(value, unit = "L") {
  if (value === null || value === undefined) return "–";
  const digits = Math.abs(value) >= 1000 ? 0 : 2;
  return `${num(value, digits)} ${unit === "L20" ? unitLabel("L20") : unit}`;
}

/** The unit a field name carries in its suffix (book_20_l → L at 20 °C, rate_l_h → L/h, …). */
export function unitOf(key) {
  if (/_20_l$/.test(key)) return "L20";
  if (/_l_h$/.test(key)) return "L/h";
  if (/_l$/.test(key)) return "L";
  if (/_pct($|_)/.test(key)) return "%";
  if (/_kg_m3$/.test(key)) return "kg/m³";
  if (/_pa$/.test(key)) return "Pa";
  if (/_c$/.test(key)) return "°C";
  if (/_mm$/.test(key)) return "mm";
  if (/_h$/.test(key) || key === "hours" || key === "min_hours") return "h";
  if (/_min$/.test(key)) return "min";
  if (/(^|_)days$/.test(key)) return "days";
  if (/_fen$/.test(key)) return "fen";
  return "";
}

const DIGITS = { "L/h": 3, "%": 2, "kg/m³": 1, Pa: 0, "°C": 2, mm: 1, h: 1, min: 0, days: 0 };

/** A number in the unit `unit` (as unitOf names them), with the unit. */
export function quantity(value, unit, key = "") {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);
  if (unit === "L" || unit === "L20") {
    if (key.includes("totalizer")) return `${num(value, 2, 2)} L`;
    return litres(value, unit);
  }
  if (unit === "fen") return `${num(value / 100, 2, 2)} ${getLang() === "zh" ? "元" : "CNY"}`;
  if (unit === "days") return `${num(value, 0)} ${unitLabel("days")}`;
  if (unit === "%") return `${num(value, 2)} %`;
  if (unit) return `${num(value, DIGITS[unit] ?? 2)} ${unit}`;
  return Number.isInteger(value) ? num(value, 0) : num(value, 3);
}

const timeFormats = new Map();

function parts(iso, seconds) {
  const key = seconds ? "s" : "m";
  let fmt = timeFormats.get(key);
  if (!fmt) {
    fmt = new Intl.DateTimeFormat("en-GB", {
      timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
      minute: "2-digit", second: seconds ? "2-digit" : undefined, hourCycle: "h23",
    });
    timeFormats.set(key, fmt);
  }
  const out = {};
  for (const p of fmt.formatToParts(new Date(iso))) out[p.type] = p.value;
  return out;
}

/** An ISO-8601 instant as "2026-11-22 16:15" (Beijing time). */
export function dateTime(iso, seconds = false) {
  if (!iso) return "–";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = parts(iso, seconds);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}${seconds ? `:${p.second}` : ""}`;
}

/** Today's date in Beijing, YYYY-MM-DD. */
export function todayBeijing() {
  const p = parts(new Date().toISOString(), false);
  return `${p.year}-${p.month}-${p.day}`;
}

/** Whole days from `fromDate` to `toDate` (YYYY-MM-DD). */
export function daysBetween(fromDate, toDate) {
  return Math.round((Date.parse(`${toDate}T00:00:00Z`) - Date.parse(`${fromDate}T00:00:00Z`)) / 86400000);
}

/** A Beijing calendar date's start, as the API takes it (ISO-8601 with offset). */
export function beijingMidnight(date, plusDays = 0) {
  const d = new Date(Date.parse(`${date}T00:00:00+08:00`) + plusDays * 86400000);
  const p = parts(d.toISOString(), true);
  return `${p.year}-${p.month}-${p.day}T00:00:00+08:00`;
}

export function pct(value, digits = 1) {
  if (value === null || value === undefined) return "–";
  return `${num(value, digits)} %`;
}
