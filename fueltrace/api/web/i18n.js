// Every label of the page in Chinese and English: [中文, English]. The words of the page
// are here; the rule titles, enumerations and evidence fields are in labels.js. A label
// asked for but missing is recorded in `window.__ftMissingLabels`, which the browser test
// checks is empty.

import { ENUMS, EVIDENCE, RULES, UNITS } from "./labels.js";

export const LANGS = ["zh", "en"];

const UI = {
  "app.title": ["辽宁省成品油智慧监管", "Liaoning refined-oil supervision"],
  "app.subtitle": ["fueltrace 监管端", "fueltrace for regulators"],
  "app.skip": ["跳到正文", "Skip to content"],
  "app.times": ["时间均为北京时间(UTC+8)", "All times are Beijing time (UTC+8)"],
  "app.lang": ["English", "中文"],
  "app.langLabel": ["切换为英文界面", "Switch to Chinese"],
  "nav.label": ["主菜单", "Main menu"],
  "nav.anomalies": ["异常", "Anomalies"],
  "nav.cases": ["案件", "Cases"],
  "nav.stations": ["加油站", "Stations"],
  "nav.trace": ["追溯", "Trace"],
  "nav.recall": ["召回", "Recall"],
  "nav.inspection": ["年检", "Inspection"],

  "signin.title": ["登录", "Sign in"],
  "signin.token": ["访问令牌", "Access token"],
  "signin.help": [
    "令牌由系统管理员签发(fueltrace token create);演示环境的令牌由 fueltrace demo 打印。",
    "Your administrator issues tokens (fueltrace token create); `fueltrace demo` prints one.",
  ],
  "signin.kept": [
    "令牌只保存在本浏览器标签页中,关闭标签页即清除。",
    "The token is kept in this browser tab only and is forgotten when the tab closes.",
  ],
  "signin.submit": ["登录", "Sign in"],
  "signin.out": ["退出", "Sign out"],
  "signin.as": ["当前用户", "Signed in as"],
  "signin.notRegulator": [
    "本页面供监管人员使用。您的令牌角色为“{role}”,只能通过网关上报数据,不能查看监管数据。",
    "This page is for regulators. Your token's role is “{role}”: it sends records through " +
      "the gateway and cannot read supervision data.",
  ],

  "err.title": ["出错了", "Something went wrong"],
  "err.401": ["登录已失效或令牌无效,请重新登录。", "Your token is not valid (or no longer); sign in again."],
  "err.403": ["无权执行此操作。", "You may not do this."],
  "err.404": ["未找到。", "Not found."],
  "err.409": ["该操作与案件当前状态不符。", "This does not fit the case's current state."],
  "err.422": ["请求内容有误。", "The request is not valid."],
  "err.429": ["请求过于频繁,请稍后再试。", "Too many requests; try again shortly."],
  "err.503": ["服务暂时不可用或查询超时,请缩小范围或稍后再试。",
    "The service is unavailable or the query took too long; narrow it or try again later."],
  "err.other": ["请求失败(HTTP {status})。", "The request failed (HTTP {status})."],
  "err.timeout": ["服务器在 {s} 秒内没有响应,请稍后重试。", "The server did not answer within {s} s; try again."],
  "err.network": ["无法连接服务器,请检查网络或服务是否运行。", "Cannot reach the server: check the network and that it runs."],
  "err.server": ["服务器说明", "The server says"],
  "err.requestId": ["请求编号(联系运维时请提供)", "Request id (quote it to an operator)"],

  "common.loading": ["正在加载…", "Loading…"],
  "common.filter": ["筛选", "Filter"],
  "common.filters": ["筛选条件", "Filters"],
  "common.reset": ["清除条件", "Clear filters"],
  "common.all": ["全部", "All"],
  "common.prev": ["上一页", "Previous page"],
  "common.next": ["下一页", "Next page"],
  "common.page": ["第 {from}–{to} 条,共 {total} 条", "{from}–{to} of {total}"],
  "common.pagination": ["分页", "Pagination"],
  "common.empty": ["没有符合条件的记录。", "Nothing matches."],
  "common.none": ["无", "none"],
  "common.open": ["查看", "Open"],
  "common.csv": ["下载 CSV", "Download CSV"],
  "common.print": ["打印", "Print"],
  "common.yes": ["是", "yes"],
  "common.no": ["否", "no"],
  "common.show": ["查询", "Show"],
  "common.retry": ["重试", "Try again"],
  "common.dataTable": ["数据表", "Data table"],
  "common.downloaded": ["已下载 {name}", "Downloaded {name}"],
  "common.english": ["(英文原文)", ""],

  "f.severity": ["严重程度", "Severity"],
  "f.rule": ["规则", "Rule"],
  "f.station": ["加油站", "Station"],
  "f.stationId": ["加油站编号", "Station id"],
  "f.station.hint": ["如 ST-210100-0001", "e.g. ST-210100-0001"],
  "f.name": ["名称", "Name"],
  "f.city": ["城市", "City"],
  "f.operator": ["经营单位", "Operator"],
  "f.depot": ["油库", "Depot"],
  "f.subject": ["对象", "Subject"],
  "f.window": ["发生时间", "When"],
  "f.windowStart": ["开始", "From"],
  "f.windowEnd": ["结束", "To"],
  "f.summary": ["摘要", "Summary"],
  "f.state": ["状态", "State"],
  "f.case": ["案件", "Case"],
  "f.since": ["起始日期", "From date"],
  "f.until": ["截止日期(含)", "To date (inclusive)"],
  "f.includeResolved": ["包括已被后续数据消除的异常", "Include findings later data resolved"],
  "f.anomalyId": ["异常编号", "Finding id"],
  "f.firstSeen": ["首次发现", "First seen"],
  "f.updated": ["最近更新", "Last updated"],
  "f.resolvedAt": ["消除时间", "Resolved at"],
  "f.updatedAt": ["登记信息更新", "Registry updated"],
  "f.assignee": ["承办人", "Assignee"],
  "f.resolution": ["结论", "Resolution"],
  "f.activeAnomalies": ["未消除异常", "Active findings"],
  "f.openCases": ["未结案件", "Open cases"],
  "f.year": ["年度", "Year"],

  "anomalies.title": ["异常线索", "Anomalies"],
  "anomalies.intro": [
    "规则从上报数据中发现的异常,按严重程度和时间排序。点击一行查看证据并处置案件。",
    "What the rules found in the stations' and depots' data, most severe first. Open one " +
      "to see its evidence and work its case.",
  ],
  "anomalies.caption": ["异常列表", "Findings"],

  "anomaly.title": ["异常详情", "Finding"],
  "anomaly.evidence": ["证据", "Evidence"],
  "anomaly.evidence.caption": ["规则依据的数据(单位见数值)", "The numbers the rule found (units with each value)"],
  "anomaly.item": ["项目", "Item"],
  "anomaly.value": ["数值", "Value"],
  "anomaly.field": ["字段", "Field"],
  "anomaly.history": ["变化记录", "History"],
  "anomaly.change": ["变化", "Change"],
  "anomaly.at": ["时间", "When"],
  "anomaly.noCase": [
    "没有案件:该异常在立案前已被后续数据消除。",
    "No case: later data resolved this finding before a case was opened.",
  ],
  "anomaly.otherCases": ["该异常的全部案件", "Every case of this finding"],
  "anomaly.toStation": ["查看加油站", "Open the station"],

  "case.title": ["案件处置", "Case"],
  "case.no": ["案件号", "Case no."],
  "case.caseNo": ["第几次立案", "Case of the finding"],
  "case.openedAt": ["立案时间", "Opened"],
  "case.openedBy": ["立案人", "Opened by"],
  "case.closedAt": ["结案时间", "Closed"],
  "case.reopenedFrom": ["接续的已结案件", "Follows closed case"],
  "case.act": ["办理", "Act on the case"],
  "case.next": ["下一步", "Next step"],
  "case.reason": ["理由(写入审计记录)", "Reason (kept in the audit trail)"],
  "case.submit": ["提交", "Submit"],
  "case.closeWarn": [
    "结案后案件不能重新打开;若规则再次发现该异常,系统会新立案件。",
    "A closed case stays closed; if the rules find the finding again, a new case is opened.",
  ],
  "case.closed": ["案件已结案,只能添加备注。", "The case is closed; notes can still be added."],
  "case.assign": ["指派承办人", "Assign"],
  "case.assignTo": ["承办人(留空表示取消指派)", "Assignee (empty: nobody)"],
  "case.assignMe": ["指派给我", "Assign to me"],
  "case.assignSubmit": ["指派", "Assign"],
  "case.assignReason": ["指派理由(写入审计记录)", "Why (kept in the audit trail)"],
  "case.why": ["理由 / 备注", "Reason or note"],
  "case.note": ["添加备注", "Add a note"],
  "case.noteText": ["备注内容", "Note"],
  "case.noteSubmit": ["添加备注", "Add note"],
  "case.audit": ["审计记录", "Audit trail"],
  "case.audit.caption": ["谁在何时做了什么、为什么(不可修改)", "Who did what, when and why (never rewritten)"],
  "case.actor": ["操作人", "By"],
  "case.role": ["角色", "Role"],
  "case.action": ["操作", "Action"],
  "case.fromTo": ["状态变化", "State"],
  "case.done": ["已保存:{what}", "Saved: {what}"],
  "case.noteAdded": ["已添加备注", "note added"],
  "case.assigned": ["已指派", "assignee changed"],
  "case.readOnly": ["您的角色不能办理案件。", "Your role cannot act on cases."],
  "case.list": ["案件列表", "Cases"],
  "cases.title": ["案件", "Cases"],
  "cases.intro": [
    "每条未消除的异常都会立案。按最近变动排序。",
    "Every active finding gets a case. Most recently changed first.",
  ],
  "cases.mine": ["只看指派给我的", "Assigned to me only"],

  "stations.title": ["加油站", "Stations"],
  "stations.intro": ["已登记的加油站及其未消除异常数。", "Registered stations and their active findings."],
  "stations.go": ["按编号打开", "Open by id"],
  "station.registry": ["登记信息", "Registry"],
  "station.licences": ["证照", "Licences"],
  "station.licence.kind": ["证照种类", "Licence"],
  "station.licence.number": ["证号", "Number"],
  "station.licence.from": ["有效期起", "Valid from"],
  "station.licence.until": ["有效期至", "Valid until"],
  "station.licence.status": ["登记状态", "Status"],
  "station.licence.standing": ["今日状态", "Standing today"],
  "station.licence.daysLeft": ["剩余 {n} 天", "{n} days left"],
  "station.licence.daysAgo": ["已过期 {n} 天", "expired {n} days ago"],
  "station.licence.none": ["未登记任何证照。", "No licence registered."],
  "station.tanks": ["油罐", "Tanks"],
  "station.tank": ["油罐", "Tank"],
  "station.product": ["油品", "Product"],
  "station.capacity": ["容量", "Capacity"],
  "station.lastRead": ["最近液位读数", "Latest gauge reading"],
  "station.volume": ["油量(实际温度)", "Volume (observed)"],
  "station.volume20": ["油量(20 °C)", "Volume at 20 °C"],
  "station.temperature": ["油温", "Temperature"],
  "station.water": ["水高", "Water"],
  "station.fill": ["液位占比", "Fill"],
  "station.nozzles": ["油枪", "Nozzles"],
  "station.nozzle": ["油枪", "Nozzle"],
  "station.dispenser": ["加油机", "Dispenser"],
  "station.recent": ["近期异常", "Recent findings"],
  "station.recon": ["每日库存核对(20 °C)", "Daily reconciliation (at 20 °C)"],
  "station.recon.intro": [
    "账面库存 = 期初实测 + 卸油 − 销售;差异 = 实测 − 账面(负数表示油少了)。阴影为容差范围。",
    "Book = opening measured + deliveries − sales; variance = measured − book (negative: fuel " +
      "missing). The shaded band is the tolerance.",
  ],
  "station.recon.range": ["核对期间", "Period"],
  "station.recon.from": ["自", "From"],
  "station.recon.to": ["至", "To"],
  "station.recon.none": ["该期间没有液位数据。", "No gauge data in this period."],
  "station.recon.fails": ["{n} 天中 {f} 天超差", "{f} of {n} days out of tolerance"],
  "chart.book": ["账面库存", "Book stock"],
  "chart.measured": ["实测库存", "Measured stock"],
  "chart.variance": ["差异", "Variance"],
  "chart.tolerance": ["容差", "Tolerance"],
  "chart.fail": ["超差", "out of tolerance"],
  "chart.stock": ["库存 L(20 °C)", "Stock, L at 20 °C"],
  "chart.varianceAxis": ["差异 L", "Variance, L"],
  "chart.title": ["油罐 {tank} 每日账面与实测库存", "Tank {tank}: daily book and measured stock"],
  "chart.desc": [
    "{n} 天,{f} 天超差;最大差异 {v}({d})。",
    "{n} days, {f} out of tolerance; largest variance {v} ({d}).",
  ],
  "recon.date": ["日期", "Date"],
  "recon.opening": ["期初实测", "Opening"],
  "recon.deliveries": ["卸油", "Deliveries"],
  "recon.sales": ["销售", "Sales"],
  "recon.book": ["账面", "Book"],
  "recon.measured": ["期末实测", "Measured"],
  "recon.variance": ["差异", "Variance"],
  "recon.tolerance": ["容差", "Tolerance"],
  "recon.result": ["结果", "Result"],

  "trace.title": ["油品追溯", "Trace"],
  "trace.intro": [
    "从一笔销售追溯到油库批次,或从一个批次追踪到每个油罐和每笔销售。",
    "Back from a sale to its depot batches, or forward from a batch to every tank and sale.",
  ],
  "trace.sale": ["销售 → 批次", "Sale → batches"],
  "trace.txn": ["交易号", "Transaction id"],
  "trace.batch": ["批次 → 去向", "Batch → where it went"],
  "trace.batchId": ["批次号", "Batch id"],
  "trace.delivery": ["卸油单", "Delivery"],
  "trace.deliveryId": ["卸油单号", "Delivery id"],
  "trace.saleResult": ["销售 {txn} 的来源批次", "Where sale {txn} came from"],
  "trace.batchResult": ["批次 {batch} 的去向", "Where batch {batch} went"],
  "trace.deliveryResult": ["卸油 {id}", "Delivery {id}"],
  "trace.litres": ["油量(20 °C)", "Litres at 20 °C"],
  "trace.share": ["占比", "Share"],
  "trace.dispatch": ["出库单", "Dispatch"],
  "trace.dispatchedAt": ["出库时间", "Dispatched at"],
  "trace.opening": ["开始监测前已在罐内的油", "Stock before the tank's first gauge reading"],
  "trace.untraced": ["无出库记录的卸油", "A delivery without a dispatch"],
  "trace.noLineage": ["没有来源数据", "No lineage"],
  "trace.totals": ["合计", "Totals"],
  "trace.dispatched": ["出库", "Dispatched"],
  "trace.inTransit": ["在途", "In transit"],
  "trace.transitLoss": ["运输损耗", "Transit loss"],
  "trace.received": ["收货", "Received"],
  "trace.sold": ["已售出", "Sold"],
  "trace.inTanks": ["仍在罐内", "Still in tanks"],
  "trace.losses": ["罐内损耗", "Losses in tanks"],
  "trace.firstSale": ["首笔销售", "First sale"],
  "trace.lastSale": ["末笔销售", "Last sale"],
  "trace.dispatches": ["出库记录", "Dispatches"],
  "trace.tanks": ["收货油罐", "Tanks that received it"],
  "trace.vehicle": ["车牌", "Vehicle"],
  "trace.status": ["核对结果", "Check"],
  "trace.mismatches": ["不符项", "Mismatches"],
  "trace.receivedAt": ["收货时间", "Received at"],
  "trace.salesCount": ["销售笔数", "Sales"],
  "trace.toRecall": ["生成召回报告", "Recall report"],
  "trace.observed": ["油量(实际温度)", "Volume (observed)"],
  "trace.density": ["密度(20 °C)", "Density at 20 °C"],
  "trace.obsShort": ["实际温度下", "Observed"],
  "trace.l20Short": ["20 °C 下", "At 20 °C"],
  "trace.densityShort": ["密度", "Density"],
  "trace.time": ["时间", "Time"],
  "trace.started": ["开始", "Started"],
  "trace.ended": ["结束", "Ended"],
  "trace.gauge": ["液位仪核对", "Tank gauge check"],
  "trace.gaugeRise": ["液位仪所见增量", "Rise the gauge saw"],
  "trace.gaugeDiff": ["申报 − 液位增量", "Declared − gauge rise"],
  "trace.difference": ["收货 − 出库", "Received − dispatched"],

  "recall.title": ["批次召回", "Batch recall"],
  "recall.intro": [
    "问题批次的去向:需要封存的油罐,以及售出给谁(含发票号)。",
    "Where a bad batch is: the tanks to seal, and every sale of it (with invoice ids).",
  ],
  "recall.seal": ["需封存的油罐", "Tanks to seal"],
  "recall.sealNone": ["没有油罐仍存有该批次。", "No tank still holds this batch."],
  "recall.sales": ["含该批次的销售", "Sales holding part of it"],
  "recall.salesShown": ["显示前 {n} 条,共 {total} 条;完整清单请下载 CSV。",
    "The first {n} of {total}; download the CSV for all."],
  "recall.invoice": ["发票号", "Invoice"],
  "recall.fromBatch": ["来自该批次", "From the batch"],
  "recall.csvTanks": ["下载 CSV(按油罐)", "Download CSV (per tank)"],
  "recall.csvSales": ["下载 CSV(按销售,含发票号)", "Download CSV (per sale, with invoices)"],

  "inspection.title": ["年度检查名单", "Annual inspection list"],
  "inspection.intro": [
    "截至检查日(12 月 31 日或今天)不符合要求的加油站及原因。",
    "The stations that fail as of the inspection date (31 December, or today), with reasons.",
  ],
  "inspection.summary": [
    "截至 {asOf}:检查 {n} 座加油站,{f} 座不合格。",
    "As of {asOf}: {n} stations inspected, {f} fail.",
  ],
  "inspection.reasons": ["不合格原因", "Why it fails"],
  "inspection.caption": ["不合格加油站", "Failing stations"],
};

let lang = "zh";
const missing = new Set();
window.__ftMissingLabels = missing;

export function setLang(value) {
  lang = LANGS.includes(value) ? value : "zh";
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
}

export function getLang() {
  return lang;
}

function pick(pair) {
  return pair[lang === "zh" ? 0 : 1];
}

function fill(text, vars) {
  return text.replace(/\{(\w+)\}/g, (_, k) => (k in vars ? String(vars[k]) : `{${k}}`));
}

/** The UI label `key`, with {placeholders} filled from `vars`. */
export function t(key, vars = {}) {
  const pair = UI[key];
  if (!pair) {
    missing.add(`ui:${key}`);
    return key;
  }
  return fill(pick(pair), vars);
}

/** The label of `value` in the enumeration `kind` (severity, city, product, …); unknown
 * values are shown as they are. */
export function label(kind, value) {
  if (value === null || value === undefined || value === "") return "";
  const pair = ENUMS[kind]?.[value];
  if (!pair) {
    missing.add(`${kind}:${value}`);
    return String(value);
  }
  return pick(pair);
}

export function hasLabel(kind, value) {
  return Boolean(ENUMS[kind]?.[value]);
}

export function enumValues(kind) {
  return Object.keys(ENUMS[kind] || {});
}

/** The rule's title in the current language and in the other one. */
export function ruleTitles(rule) {
  const pair = RULES[rule];
  if (!pair) {
    missing.add(`rule:${rule}`);
    return { main: rule, other: "" };
  }
  return lang === "zh" ? { main: pair[0], other: pair[1] } : { main: pair[1], other: pair[0] };
}

export function ruleNames() {
  return Object.keys(RULES);
}

/** The label of an evidence field; unknown fields are shown humanised. */
export function evidenceLabel(key) {
  const pair = EVIDENCE[key];
  if (!pair) {
    missing.add(`evidence:${key}`);
    return key.replace(/_/g, " ");
  }
  return pick(pair);
}

export function unitLabel(unit) {
  const pair = UNITS[unit];
  return pair ? pick(pair) : unit;
}
