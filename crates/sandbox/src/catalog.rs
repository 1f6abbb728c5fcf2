//! The product catalog: a fixed, derived (no randomness) set of gift cards
//! across 10 countries and 9 currencies, the filter groups, fixed USD
//! exchange rates, and the `getFilters` / `getVouchers` query logic
//! (filters, include/exclude, sort, paging). Also renders the product SVGs
//! served at `/sandbox-assets/<id>.svg`.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

use crate::plum::{amount, decimal, flag, limit_from_zero, object, page_from_zero, text, PlumError};

pub struct Currency {
    pub code: &'static str,
    pub name: &'static str,
    /// Value of one unit in USD (the wallet currency).
    pub usd_rate: f64,
    denoms: &'static [u32],
    open: (u32, u32),
}

pub struct Country {
    pub code: &'static str,
    pub iso: &'static str,
    pub name: &'static str,
    pub currency: &'static str,
}

pub const CURRENCIES: &[Currency] = &[
    Currency {
        code: "USD",
        name: "US Dollar",
        usd_rate: 1.0,
        denoms: &[10, 25, 50, 100],
        open: (5, 500),
    },
    Currency {
        code: "INR",
        name: "Indian Rupee",
        usd_rate: 0.012,
        denoms: &[500, 1000, 2000, 5000],
        open: (100, 10000),
    },
    Currency {
        code: "GBP",
        name: "British Pound",
        usd_rate: 1.27,
        denoms: &[10, 20, 50, 100],
        open: (5, 400),
    },
    Currency {
        code: "EUR",
        name: "Euro",
        usd_rate: 1.08,
        denoms: &[10, 25, 50, 100],
        open: (5, 500),
    },
    Currency {
        code: "AED",
        name: "UAE Dirham",
        usd_rate: 0.2723,
        denoms: &[50, 100, 250, 500],
        open: (25, 2000),
    },
    Currency {
        code: "SGD",
        name: "Singapore Dollar",
        usd_rate: 0.74,
        denoms: &[10, 20, 50, 100],
        open: (10, 500),
    },
    Currency {
        code: "CAD",
        name: "Canadian Dollar",
        usd_rate: 0.73,
        denoms: &[25, 50, 100],
        open: (10, 500),
    },
    Currency {
        code: "AUD",
        name: "Australian Dollar",
        usd_rate: 0.66,
        denoms: &[20, 50, 100],
        open: (10, 500),
    },
    Currency {
        code: "JPY",
        name: "Japanese Yen",
        usd_rate: 0.0067,
        denoms: &[1000, 3000, 5000, 10000],
        open: (500, 50000),
    },
];

pub const COUNTRIES: &[Country] = &[
    Country {
        code: "usa",
        iso: "US",
        name: "United States",
        currency: "USD",
    },
    Country {
        code: "ind",
        iso: "IN",
        name: "India",
        currency: "INR",
    },
    Country {
        code: "gbr",
        iso: "GB",
        name: "United Kingdom",
        currency: "GBP",
    },
    Country {
        code: "deu",
        iso: "DE",
        name: "Germany",
        currency: "EUR",
    },
    Country {
        code: "fra",
        iso: "FR",
        name: "France",
        currency: "EUR",
    },
    Country {
        code: "are",
        iso: "AE",
        name: "United Arab Emirates",
        currency: "AED",
    },
    Country {
        code: "sgp",
        iso: "SG",
        name: "Singapore",
        currency: "SGD",
    },
    Country {
        code: "can",
        iso: "CA",
        name: "Canada",
        currency: "CAD",
    },
    Country {
        code: "aus",
        iso: "AU",
        name: "Australia",
        currency: "AUD",
    },
    Country {
        code: "jpn",
        iso: "JP",
        name: "Japan",
        currency: "JPY",
    },
];

const CATEGORIES: &[(&str, &str)] = &[
    ("food_beverage", "Food & Beverage"),
    ("fashion", "Fashion & Lifestyle"),
    ("electronics", "Electronics"),
    ("entertainment", "Entertainment"),
    ("travel", "Travel & Hospitality"),
    ("grocery", "Grocery"),
    ("books", "Books & Stationery"),
    ("gaming", "Gaming"),
    ("wellness", "Health & Wellness"),
    ("ecommerce", "E-commerce"),
    ("home", "Home & Living"),
    ("beauty", "Beauty & Personal Care"),
];

/// Fictional brands: (name, index into CATEGORIES, usage type).
const BRANDS: &[(&str, usize, &str)] = &[
    ("Harbor Coffee Co.", 0, "online_offline"),
    ("Pixel Plaza", 2, "online"),
    ("Urban Thread", 1, "online_offline"),
    ("Greenleaf Grocers", 5, "offline"),
    ("StreamBox", 3, "online"),
    ("Skyway Travel", 4, "online"),
    ("Page & Quill Books", 6, "online_offline"),
    ("PlayForge Games", 7, "online"),
    ("Zen Spa Collective", 8, "offline"),
    ("MegaMart Online", 9, "online"),
    ("Sunrise Bakery", 0, "offline"),
    ("Northwind Outfitters", 1, "online_offline"),
    ("Volt Electronics", 2, "online_offline"),
    ("CineStar Movies", 3, "offline"),
    ("FitLife Gym", 8, "offline"),
    ("TasteBud Dining", 0, "online_offline"),
    ("HomeNest Living", 10, "online_offline"),
    ("Nova Beauty", 11, "online"),
    ("Atlas Hotels", 4, "online"),
    ("QuickBite Delivery", 0, "online"),
    ("Melody Music", 3, "online"),
    ("Bloom Florists", 10, "online"),
    ("Trailhead Sports", 1, "online_offline"),
    ("Cartwheel Kids", 9, "online"),
];

const PRODUCTS_PER_COUNTRY: usize = 13;

pub struct Product {
    pub id: u64,
    pub idx: usize,
    pub name: String,
    pub brand: &'static str,
    pub brand_idx: usize,
    category: (&'static str, &'static str),
    usage: &'static str,
    pub country: &'static Country,
    pub currency: &'static Currency,
    pub fixed: bool,
    pub denoms: Vec<u32>,
    pub min: u32,
    pub max: u32,
    pub delayed: bool,
    pub qty_limit: u32,
    pub phone_mandatory: bool,
    discount: f64,
    last_update: String,
}

pub struct Catalog {
    pub products: Vec<Product>,
    by_id: HashMap<u64, usize>,
}

pub fn currency(code: &str) -> Option<&'static Currency> {
    CURRENCIES
        .iter()
        .find(|c| c.code.eq_ignore_ascii_case(code))
}

/// The upper end of a `tatInDays` text in whole days: `"3"` → 3, `"1 - 7"`
/// → 7; `None` for anything else.
pub fn tat_upper_days(tat: &str) -> Option<u32> {
    tat.rsplit('-').next()?.trim().parse().ok()
}

/// The process-wide catalog (derived once, identical in every run).
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(Catalog::build)
}

impl Catalog {
    fn build() -> Self {
        let mut products = Vec::new();
        for (ci, country) in COUNTRIES.iter().enumerate() {
            let cur = currency(country.currency).unwrap_or(&CURRENCIES[0]);
            for j in 0..PRODUCTS_PER_COUNTRY {
                let idx = products.len();
                // gcd(7, 24) = 1, so every brand appears at most once per country.
                let brand_idx = (ci * 5 + j * 7) % BRANDS.len();
                let (brand, cat, usage) = BRANDS[brand_idx];
                let fixed = idx % 4 != 3;
                let denoms: Vec<u32> = if fixed {
                    cur.denoms.to_vec()
                } else {
                    Vec::new()
                };
                let (min, max) = if fixed {
                    (
                        denoms.first().copied().unwrap_or(0),
                        denoms.last().copied().unwrap_or(0),
                    )
                } else {
                    cur.open
                };
                let suffix = if idx % 3 == 0 {
                    "e-Gift Card"
                } else {
                    "Gift Voucher"
                };
                products.push(Product {
                    id: 10_000 + 100 * (ci as u64 + 1) + j as u64,
                    idx,
                    name: format!("{brand} {} {suffix}", country.iso),
                    brand,
                    brand_idx,
                    category: CATEGORIES[cat],
                    usage,
                    country,
                    currency: cur,
                    fixed,
                    denoms,
                    min,
                    max,
                    delayed: idx % 6 == 5,
                    qty_limit: if idx % 7 == 2 { 5 } else { 10 },
                    phone_mandatory: idx % 11 == 4,
                    discount: [0.0, 0.0, 2.5, 0.0, 5.0][idx % 5],
                    last_update: format!("2025-{:02}-{:02} 06:00:00", 1 + idx % 12, 1 + idx % 28),
                });
            }
        }
        let by_id = products
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id, i))
            .collect();
        Self { products, by_id }
    }

    pub fn get(&self, id: u64) -> Option<&Product> {
        self.by_id.get(&id).and_then(|i| self.products.get(*i))
    }

    /// `getFilters`. `includeFilters` and `excludeFilters` only apply when
    /// `filterGroupCode` is set (xoxoday-api.md §3.1); without a group every
    /// filter of every group comes back, whatever they say. `with_currency`:
    /// whether the sandbox's own "currency" group is among them (the doc
    /// names only "Country" and "voucher_category").
    pub fn filters(&self, input: &Map<String, Value>, with_currency: bool) -> Result<Value, PlumError> {
        let group = text(input, "filterGroupCode")?.trim().to_ascii_lowercase();
        let mut include = code_set(&text(input, "includeFilters")?);
        let mut exclude = code_set(&text(input, "excludeFilters")?);
        if group.is_empty() {
            include.clear();
            exclude.clear();
        }
        let groups = self.filter_groups();
        let out: Vec<Value> = groups
            .into_iter()
            .filter(|(code, _, _, _)| with_currency || *code != "currency")
            .filter(|(code, _, _, _)| group.is_empty() || code.eq_ignore_ascii_case(&group))
            .map(|(code, name, desc, values)| {
                let filters: Vec<Value> = values
                    .into_iter()
                    .filter(|(_, _, c)| include.is_empty() || include.contains(&c.to_ascii_lowercase()))
                    .filter(|(_, _, c)| !exclude.contains(&c.to_ascii_lowercase()))
                    .map(|(v, iso, c)| json!({ "filterValue": v, "isoCode": iso, "filterValueCode": c }))
                    .collect();
                json!({
                    "filterGroupName": name,
                    "filterGroupDescription": desc,
                    "filterGroupCode": code,
                    "filters": filters,
                })
            })
            .collect();
        Ok(Value::Array(out))
    }

    #[allow(clippy::type_complexity)]
    fn filter_groups(
        &self,
    ) -> Vec<(
        &'static str,
        &'static str,
        &'static str,
        Vec<(String, String, String)>,
    )> {
        let countries = COUNTRIES
            .iter()
            .map(|c| (c.name.to_owned(), c.iso.to_owned(), c.code.to_owned()))
            .collect();
        let categories = CATEGORIES
            .iter()
            .map(|(code, name)| ((*name).to_owned(), String::new(), (*code).to_owned()))
            .collect();
        let currencies = CURRENCIES
            .iter()
            .map(|c| {
                (
                    c.name.to_owned(),
                    c.code.to_owned(),
                    c.code.to_ascii_lowercase(),
                )
            })
            .collect();
        vec![
            (
                "country",
                "Country",
                "Countries where the voucher can be redeemed",
                countries,
            ),
            (
                "voucher_category",
                "Voucher Category",
                "Category of the voucher",
                categories,
            ),
            (
                "currency",
                "Currency",
                "Currency of the voucher",
                currencies,
            ),
        ]
    }

    /// `getVouchers`.
    pub fn vouchers(
        &self,
        input: &Map<String, Value>,
        asset_base: &str,
    ) -> Result<Value, PlumError> {
        let limit = limit_from_zero(input, "limit")?;
        let page = page_from_zero(input, "page")?;
        let with_fx = flag(input, "exchangeRate", false)?;
        let include = id_list(&text(input, "includeProducts")?);
        let exclude = id_list(&text(input, "excludeProducts")?).unwrap_or_default();
        let filters = parse_filters(input.get("filters"))?;
        let sort = parse_sort(object(input, "sort")?)?;
        // Another catalogue (xoxoday-api.md §3: `categoryType` miles, lounge
        // or merchandise; the perks page's `categoryTypes` offers): the
        // sandbox holds gift cards only, so it has none of its products.
        let other_catalogue = !text(input, "categoryType")?.is_empty() || !text(input, "categoryTypes")?.is_empty();

        let mut hits: Vec<&Product> = self
            .products
            .iter()
            .filter(|_| !other_catalogue)
            .filter(|p| include.as_ref().is_none_or(|ids| ids.contains(&p.id)))
            .filter(|p| !exclude.contains(&p.id))
            .filter(|p| filters.iter().all(|f| f.matches(p)))
            .collect();

        if let Some((field, desc)) = sort {
            hits.sort_by(|a, b| {
                let o = compare(a, b, &field);
                if desc {
                    o.reverse()
                } else {
                    o
                }
            });
        }
        let (start, take) = match limit {
            Some(limit) => (
                usize::try_from((page - 1).saturating_mul(limit)).unwrap_or(usize::MAX),
                usize::try_from(limit).unwrap_or(usize::MAX),
            ),
            None => (0, usize::MAX),
        };
        let data: Vec<Value> = hits
            .iter()
            .skip(start)
            .take(take)
            .map(|p| p.to_json(asset_base, with_fx))
            .collect();
        Ok(Value::Array(data))
    }
}

fn code_set(list: &str) -> Vec<String> {
    list.split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Comma-separated product ids: `None` (no filter) when the list has no
/// entry at all, else the ids it names. An entry that is no id (`"abc"`, a
/// merchandise id `"MER-1"`) matches nothing, so a list of such entries
/// alone includes no product: it is never read as no filter.
fn id_list(list: &str) -> Option<Vec<u64>> {
    let mut entries = list.split(',').map(str::trim).filter(|s| !s.is_empty()).peekable();
    entries.peek()?;
    Some(entries.filter_map(|s| s.parse().ok()).collect())
}

enum Filter {
    Name(String),
    Country(String),
    Currency(String),
    Delivery(String),
    Category(String),
    Price(f64),
    /// A `price` range as getFilters' price group writes them: `"0 - 1000"`,
    /// `"10,000 - above"` (no upper end).
    PriceRange(f64, f64),
    MinPrice(f64),
    MaxPrice(f64),
}

/// The filter keys whose value is text (a name, a `filterValueCode`, a
/// currency code, a delivery type, a category), not a price.
pub const TEXT_FILTER_KEYS: [&str; 6] = ["productName", "country", "currencyCode", "deliveryType", "voucher_category", "category"];

/// `filters`: an array of `{key, value}` objects (absent, null or an empty
/// object, which a published JavaScript client sends to production: none).
/// Unknown keys are ignored, like an unknown query string parameter; the
/// text keys ([`TEXT_FILTER_KEYS`]) need a string;
/// `minPrice` and `maxPrice` need a number, and count only beside a
/// `currencyCode`; `price` a number or a range
/// (Xoxoday's filter table types it "String, price range filters").
fn parse_filters(v: Option<&Value>) -> Result<Vec<Filter>, PlumError> {
    let list = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(o)) if o.is_empty() => return Ok(Vec::new()),
        Some(Value::Array(a)) => a.as_slice(),
        Some(_) => return Err(PlumError::validation("filters must be a list of {key, value}")),
    };
    let mut out = Vec::new();
    for f in list {
        let (Some(Value::String(key)), Some(raw)) = (f.get("key"), f.get("value")) else {
            return Err(PlumError::validation("each filter must be an object with a string key and a value"));
        };
        let s = match raw {
            Value::String(s) => s.trim().to_ascii_lowercase(),
            // Xoxoday's filter table types every value "String"; the
            // sandbox takes a number for a price (README), never for a
            // name, country, currency, delivery type or category (the
            // `text_numbers` reading turns one into its text first).
            Value::Number(_) if TEXT_FILTER_KEYS.contains(&key.as_str()) => {
                return Err(PlumError::validation(format!("filter {key} must be a string")))
            }
            Value::Number(n) => n.to_string(),
            _ => return Err(PlumError::validation(format!("filter {key} needs a string or number value"))),
        };
        let num = || {
            decimal(raw).ok_or_else(|| PlumError::validation(format!("filter {key} needs a numeric value")))
        };
        let filter = match key.as_str() {
            "productName" => Filter::Name(s),
            "country" => Filter::Country(s),
            "currencyCode" => Filter::Currency(s),
            "deliveryType" => Filter::Delivery(s),
            "voucher_category" | "category" => Filter::Category(s),
            "price" => match price_range(&s) {
                Some((low, high)) => Filter::PriceRange(low, high),
                None => Filter::Price(num().map_err(|_| PlumError::validation("filter price needs a number or a range such as 0 - 1000"))?),
            },
            "minPrice" => Filter::MinPrice(num()?),
            "maxPrice" => Filter::MaxPrice(num()?),
            _ => continue,
        };
        out.push(filter);
    }
    // xoxoday-api.md §3.2: minPrice and maxPrice work only together with
    // currencyCode (a bound means nothing without its currency).
    if !out.iter().any(|f| matches!(f, Filter::Currency(c) if !c.is_empty())) {
        out.retain(|f| !matches!(f, Filter::MinPrice(_) | Filter::MaxPrice(_)));
    }
    Ok(out)
}

impl Filter {
    fn matches(&self, p: &Product) -> bool {
        match self {
            Filter::Name(s) => p.name.to_ascii_lowercase().contains(s.as_str()),
            // A filterValueCode from getFilters' country group ("usa"),
            // as xoxoday-api.md §3.2 documents; not the ISO code or name.
            Filter::Country(s) => s.is_empty() || p.country.code == s,
            Filter::Currency(s) => s.is_empty() || p.currency.code.eq_ignore_ascii_case(s),
            // The two values xoxoday-api.md §3.2 lists (already lowercased,
            // as for country); any other matches nothing, as an unknown
            // country or currency does.
            Filter::Delivery(s) => match s.as_str() {
                "" => true,
                "delayed" => p.delayed,
                "realtime" => !p.delayed,
                _ => false,
            },
            Filter::Category(s) => {
                s.is_empty() || p.category.0 == s || p.category.1.eq_ignore_ascii_case(s)
            }
            Filter::Price(v) => p.accepts(*v),
            Filter::PriceRange(low, high) => f64::from(p.max) >= *low && f64::from(p.min) <= *high,
            Filter::MinPrice(v) => f64::from(p.max) >= *v,
            Filter::MaxPrice(v) => f64::from(p.min) <= *v,
        }
    }
}

/// A price range, `"low - high"` (hyphen or en dash, spaces and thousands
/// commas optional) or `"low - above"`; `None` for anything else.
fn price_range(s: &str) -> Option<(f64, f64)> {
    let s = s.replace(',', "");
    let (low, high) = s.split_once(['-', '\u{2013}'])?;
    let low: f64 = low.trim().parse().ok().filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    let high = match high.trim() {
        "above" => f64::INFINITY,
        h => h.parse().ok().filter(|n: &f64| n.is_finite() && *n >= low)?,
    };
    Some((low, high))
}

/// `sort: {field, order}`: `None` (catalogue order) when absent, empty or
/// without a field; `order` DESC (any case) sorts descending.
fn parse_sort(sort: Option<&Map<String, Value>>) -> Result<Option<(String, bool)>, PlumError> {
    let Some(sort) = sort else { return Ok(None) };
    let member = |k: &str| match sort.get(k) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(_) => Err(PlumError::validation(format!("sort.{k} must be a string"))),
    };
    let (field, order) = (member("field")?, member("order")?);
    Ok((!field.is_empty()).then(|| (field.to_owned(), order.eq_ignore_ascii_case("desc"))))
}

fn compare(a: &Product, b: &Product, field: &str) -> Ordering {
    match field {
        "name" | "productName" => a
            .name
            .to_ascii_lowercase()
            .cmp(&b.name.to_ascii_lowercase()),
        "brand" => a.brand.cmp(b.brand),
        "price" | "minValue" => a.min.cmp(&b.min),
        "maxValue" => a.max.cmp(&b.max),
        "countryName" | "country" => a.country.name.cmp(b.country.name),
        "currencyCode" => a.currency.code.cmp(b.currency.code),
        "lastUpdateDate" => a.last_update.cmp(&b.last_update),
        _ => a.id.cmp(&b.id),
    }
    .then(a.id.cmp(&b.id))
}

impl Product {
    /// Whether `d` (in the product currency) is a valid denomination.
    pub fn accepts(&self, d: f64) -> bool {
        if self.fixed {
            self.denoms.iter().any(|x| (f64::from(*x) - d).abs() < 1e-9)
        } else {
            d >= f64::from(self.min) && d <= f64::from(self.max)
        }
    }

    pub fn category_name(&self) -> &'static str {
        self.category.1
    }

    /// A delayed product's `tatInDays`, the turnaround Xoxoday states in
    /// days: `"3"`, or a range such as `"1 - 7"` (xoxoday-api.md §3.2);
    /// `None` for a realtime product (its `tatInDays` is 0).
    pub fn tat(&self) -> Option<&'static str> {
        self.delayed.then_some(if self.idx % 4 == 1 { "1 - 7" } else { "3" })
    }

    /// The days a delayed product's order waits for its vouchers: the upper
    /// end of its `tatInDays` (`"3"` → 3, `"1 - 7"` → 7); 0 for a realtime
    /// product, delivered at once.
    pub fn turnaround_days(&self) -> u32 {
        self.tat().and_then(tat_upper_days).unwrap_or(0)
    }

    pub fn to_json(&self, asset_base: &str, with_fx: bool) -> Value {
        let rate = 1.0 / self.currency.usd_rate;
        let exchange_rate = if with_fx {
            amount(rate)
        } else if self.currency.code == "USD" {
            json!("1")
        } else if self.idx % 2 == 0 {
            Value::Null
        } else {
            amount(rate)
        };
        let tat = if let Some(tat) = self.tat() {
            json!(tat)
        } else if self.idx % 2 == 0 {
            json!(0)
        } else {
            json!("0")
        };
        let denoms = self
            .denoms
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        json!({
            "productId": self.id,
            "name": self.name,
            "description": format!("Use this {} gift card at {} stores and online.", self.brand, self.country.name),
            "termsAndConditionsInstructions": "<ul><li>Sandbox voucher: not redeemable anywhere.</li><li>Cannot be exchanged for cash.</li></ul>",
            "expiryAndValidity": "Valid for 12 months from the date of issue.",
            "redemptionInstructions": "Present the voucher code and PIN at checkout.",
            "categories": self.category.1,
            "lastUpdateDate": self.last_update,
            "imageUrl": format!("{asset_base}/sandbox-assets/{}.svg", self.id),
            "brand": self.brand,
            "currencyCode": self.currency.code,
            "currencyName": self.currency.name,
            "countryName": self.country.name,
            "countryCode": self.country.iso,
            "countries": [{ "code": self.country.iso, "name": self.country.name }],
            "exchangeRateRule": 1,
            "exchangeRate": exchange_rate,
            "orderQuantityLimit": self.qty_limit,
            "valueType": if self.fixed { "fixed_denomination" } else { "open_value" },
            "maxValue": self.max,
            "minValue": self.min,
            "valueDenominations": denoms,
            "isPhoneNumberMandatory": self.phone_mandatory,
            "tatInDays": tat,
            "usageType": self.usage,
            "deliveryType": if self.delayed { "delayed" } else { "realtime" },
            "isCommon": if self.idx % 5 == 0 { 1 } else { 0 },
            "fee": 0,
            "discount": amount(self.discount),
            "variants": [],
            "isRecommended": self.idx % 9 == 0,
            "filterGroupCode": "",
            "productMeta": "",
            "loyaltyName": "",
            "loyaltyConversion": "",
            "metaData": "",
            "showDiscountPercent": self.discount > 0.0,
            "productImages": "",
            "parentProductId": "",
            "isDummyProduct": false,
            "is_free": false,
            "redemptionFee": 0,
            "redemptionFeeType": "",
            "redemptionFeeBorneByUser": 0,
            "redemptionFeeTax": 0,
        })
    }

    /// A small card-shaped SVG with the brand name.
    pub fn svg(&self) -> String {
        const PALETTE: &[&str] = &[
            "#1f6feb", "#8250df", "#bf3989", "#cf222e", "#bc4c00", "#9a6700", "#1a7f37", "#0969da",
            "#6639ba", "#953800",
        ];
        let color = PALETTE[self.brand_idx % PALETTE.len()];
        let brand = xml_escape(self.brand);
        format!(
            concat!(
                r##"<svg xmlns="http://www.w3.org/2000/svg" width="320" height="200" viewBox="0 0 320 200">"##,
                r##"<rect width="320" height="200" rx="16" fill="{color}"/>"##,
                r##"<circle cx="280" cy="40" r="60" fill="#ffffff" fill-opacity="0.12"/>"##,
                r##"<text x="24" y="100" font-family="sans-serif" font-size="24" font-weight="700" fill="#fff">{brand}</text>"##,
                r##"<text x="24" y="134" font-family="sans-serif" font-size="16" fill="#fff">{cur} gift card · {iso}</text>"##,
                r##"<text x="24" y="176" font-family="monospace" font-size="12" fill="#fff" fill-opacity="0.8">SANDBOX #{id}</text>"##,
                "</svg>"
            ),
            color = color,
            brand = brand,
            cur = self.currency.code,
            iso = self.country.iso,
            id = self.id,
        )
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn ids(v: &Value) -> Vec<u64> {
        v.as_array()
            .map(|a| a.iter().filter_map(|p| p["productId"].as_u64()).collect())
            .unwrap_or_default()
    }

    /// deliveryType takes the two values xoxoday-api.md §3.2 lists,
    /// `realtime` and `delayed` (in any case, as country and currencyCode
    /// do); any other value matches nothing, as an unknown country or
    /// currency does, not every realtime product.
    #[test]
    fn delivery_type_filters_only_by_the_documented_values() {
        let c = catalog();
        let by = |value: &str| {
            let filters = json!([{"key":"deliveryType","value":value}]);
            ids(&c.vouchers(&obj(json!({"limit":0,"page":1,"filters":filters})), "").unwrap())
        };
        let delayed: Vec<u64> = c.products.iter().filter(|p| p.delayed).map(|p| p.id).collect();
        let realtime: Vec<u64> = c.products.iter().filter(|p| !p.delayed).map(|p| p.id).collect();
        assert!(!delayed.is_empty() && !realtime.is_empty());
        for (value, want) in [("delayed", &delayed), ("Delayed", &delayed), ("realtime", &realtime), ("REALTIME", &realtime)] {
            assert_eq!(&by(value), want, "deliveryType {value:?}");
        }
        for other in ["instant", "foo", "real time", "real-time", "delay", "digital"] {
            assert_eq!(by(other), Vec::<u64>::new(), "deliveryType {other:?}");
        }
        assert_eq!(by("").len(), c.products.len(), "empty: no filter");
    }

    #[test]
    fn catalog_shape() {
        let c = catalog();
        assert!(c.products.len() >= 120);
        let mut currencies: Vec<_> = c.products.iter().map(|p| p.currency.code).collect();
        currencies.sort_unstable();
        currencies.dedup();
        assert!(currencies.len() >= 6);
        assert!(c.products.iter().any(|p| !p.fixed) && c.products.iter().any(|p| p.fixed));
        assert!(
            c.products.iter().any(|p| p.delayed) && c.products.iter().any(|p| p.qty_limit == 5)
        );
        let p = c.get(10_100).unwrap().to_json("", false);
        assert_eq!(p["valueDenominations"], "10,25,50,100");
        assert_eq!(p["imageUrl"], "/sandbox-assets/10100.svg");
        assert!(c.get(10_100).unwrap().svg().starts_with("<svg"));
        let mut seen = std::collections::HashSet::new();
        assert!(c.products.iter().all(|p| seen.insert(p.id)));
    }

    #[test]
    fn filters_groups_and_values() {
        let c = catalog();
        let all = c
            .filters(&obj(json!({"filterGroupCode":"","includeFilters":"","excludeFilters":""})), true)
            .unwrap();
        assert!(all.as_array().unwrap().len() >= 2);
        let country = c
            .filters(&obj(json!({"filterGroupCode":"Country","includeFilters":"usa,ind"})), true)
            .unwrap();
        let vals = &country[0]["filters"];
        assert_eq!(vals.as_array().unwrap().len(), 2);
        assert_eq!(
            vals[0],
            json!({"filterValue":"United States","isoCode":"US","filterValueCode":"usa"})
        );
        let ex = c
            .filters(&obj(json!({"filterGroupCode":"country","excludeFilters":"usa"})), true)
            .unwrap();
        assert_eq!(
            ex[0]["filters"].as_array().unwrap().len(),
            COUNTRIES.len() - 1
        );
        // Text fields are strings (xoxoday-api.md §3.1 types all three
        // "string"), absent or null; anything else, a number too, is refused.
        assert!(c.filters(&obj(json!({"filterGroupCode": null, "includeFilters": "usa"})), true).is_ok());
        for bad in [json!({"filterGroupCode": true}), json!({"includeFilters": ["usa"]}), json!({"excludeFilters": {}}),
                    json!({"filterGroupCode": null, "includeFilters": 5}), json!({"filterGroupCode": 5})] {
            assert_eq!(c.filters(&obj(bad), true).unwrap_err().error_id, "PLE10001");
        }
    }

    /// "includeFilters and excludeFilters only apply when filterGroupCode
    /// is set" (xoxoday-api.md §3.1): without a group they are ignored.
    #[test]
    fn filters_include_exclude_need_a_group() {
        let c = catalog();
        let all = c
            .filters(&obj(json!({"filterGroupCode":"","includeFilters":"","excludeFilters":""})), true)
            .unwrap();
        for (include, exclude) in [("usa", ""), ("", "usa"), ("usa,fashion", "ind"), ("nothing-at-all", "")] {
            for group in [json!(""), json!("  "), Value::Null] {
                let got = c
                    .filters(&obj(json!({"filterGroupCode": group, "includeFilters": include, "excludeFilters": exclude})), true)
                    .unwrap();
                assert_eq!(got, all, "group {group}, include {include:?}, exclude {exclude:?}: ignored");
            }
            let absent = c.filters(&obj(json!({"includeFilters": include, "excludeFilters": exclude})), true).unwrap();
            assert_eq!(absent, all, "no group at all, include {include:?}, exclude {exclude:?}: ignored");
        }
        // With a group they apply.
        let one = c.filters(&obj(json!({"filterGroupCode":"Country","includeFilters":"usa"})), true).unwrap();
        assert_eq!(one[0]["filters"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn vouchers_paging_filters_sort() {
        let c = catalog();
        let page1 = c.vouchers(&obj(json!({"limit":10,"page":1})), "").unwrap();
        assert_eq!(c.vouchers(&obj(json!({"limit":10,"page":0})), "").unwrap(), page1, "page 0 is the first page");
        assert_eq!(c.vouchers(&obj(json!({"limit":10,"page":"0"})), "").unwrap(), page1);
        let page2 = c
            .vouchers(&obj(json!({"limit":"10","page":"2"})), "")
            .unwrap();
        assert_eq!(ids(&page1).len(), 10);
        assert_eq!(ids(&page2)[0], ids(&page1)[9] + 1);
        let beyond = c
            .vouchers(&obj(json!({"limit":10,"page":1000})), "")
            .unwrap();
        assert!(ids(&beyond).is_empty());

        // limit 0: every product, whatever the page.
        let all = c.vouchers(&obj(json!({"limit":"0","page":"0"})), "").unwrap();
        assert_eq!(ids(&all).len(), c.products.len());
        assert_eq!(c.vouchers(&obj(json!({"limit":0,"page":3})), "").unwrap(), all);
        // An empty object is no filters.
        assert_eq!(c.vouchers(&obj(json!({"limit":10,"page":1,"filters":{}})), "").unwrap(), page1);

        for bad in [
            json!({"page":1}),
            json!({"limit":10}),
            json!({"limit":10,"page":"x"}),
            json!({"limit":-1,"page":1}),
            json!({"limit":1.5,"page":1}),
            json!({"limit":10,"page":1,"filters":{"key":"country"}}),
            json!({"limit":10,"page":1,"filters":[{"key":"price","value":"cheap"}]}),
            json!({"limit":10,"page":1,"filters":[{"key":"price","value":"500 - 100"}]}),
        ] {
            assert_eq!(c.vouchers(&obj(bad), "").unwrap_err().status, 400);
        }

        let usa = c
            .vouchers(
                &obj(json!({"limit":500,"page":1,"filters":[{"key":"country","value":"usa"}]})),
                "",
            )
            .unwrap();
        assert_eq!(ids(&usa).len(), PRODUCTS_PER_COUNTRY);
        assert!(usa
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["currencyCode"] == "USD"));
        // "Country values are filterValueCodes from getFilters, e.g. usa"
        // (§3.2): the ISO code or the name is no such value, and matches
        // nothing.
        let country = |value: &str| {
            let filters = json!([{"key":"country","value":value}]);
            ids(&c.vouchers(&obj(json!({"limit":0,"page":1,"filters":filters})), "").unwrap())
        };
        assert_eq!(country("USA"), ids(&usa));
        assert_eq!(country("ind").len(), PRODUCTS_PER_COUNTRY);
        for other in ["US", "us", "United States", "united states", "IN", "India", "840"] {
            assert_eq!(country(other), Vec::<u64>::new(), "country {other:?}");
        }

        let eur = c
            .vouchers(
                &obj(
                    json!({"limit":500,"page":1,"filters":[{"key":"currencyCode","value":"eur"}]}),
                ),
                "",
            )
            .unwrap();
        assert_eq!(ids(&eur).len(), 2 * PRODUCTS_PER_COUNTRY);

        let name = c.vouchers(&obj(json!({"limit":500,"page":1,"filters":[{"key":"productName","value":"harbor COFFEE"}]})), "").unwrap();
        assert!(!ids(&name).is_empty());
        assert!(name
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["brand"] == "Harbor Coffee Co."));

        let delayed = c.vouchers(&obj(json!({"limit":500,"page":1,"filters":[{"key":"deliveryType","value":"delayed"}]})), "").unwrap();
        assert!(!ids(&delayed).is_empty());
        assert!(delayed
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["deliveryType"] == "delayed"));

        let price = c.vouchers(&obj(json!({"limit":500,"page":1,"filters":[{"key":"currencyCode","value":"USD"},{"key":"price","value":25}]})), "").unwrap();
        assert!(!ids(&price).is_empty());
        assert!(ids(&price)
            .iter()
            .all(|id| c.get(*id).unwrap().accepts(25.0)));

        // A price range, as getFilters' price group writes them: products
        // with a value in it.
        let in_range = |low: f64, high: f64| {
            c.products.iter().filter(|p| f64::from(p.max) >= low && f64::from(p.min) <= high).count()
        };
        for (value, low, high) in [("200 - 300", 200.0, 300.0), ("1,000 \u{2013} above", 1000.0, f64::INFINITY), ("0-10", 0.0, 10.0)] {
            let got = c.vouchers(&obj(json!({"limit":0,"page":1,"filters":[{"key":"price","value":value}]})), "").unwrap();
            assert_eq!(ids(&got).len(), in_range(low, high), "{value}");
            assert!(ids(&got).len() < c.products.len(), "{value} filters");
        }

        let range = c.vouchers(&obj(json!({"limit":500,"page":1,"filters":[{"key":"currencyCode","value":"USD"},{"key":"minPrice","value":200},{"key":"maxPrice","value":300}]})), "").unwrap();
        // Only open-value USD products reach 200..300.
        assert!(ids(&range).iter().all(|id| !c.get(*id).unwrap().fixed));
        // Another catalogue than the gift cards: none of them.
        for other in [json!({"categoryType":"merchandise"}), json!({"categoryType":"lounge"}), json!({"categoryTypes":"offers"})] {
            let mut input = obj(json!({"limit":0,"page":1}));
            input.extend(obj(other.clone()));
            assert_eq!(ids(&c.vouchers(&input, "").unwrap()), Vec::<u64>::new(), "{other}");
        }
        assert!(!ids(&c.vouchers(&obj(json!({"limit":0,"page":1,"categoryType":""})), "").unwrap()).is_empty(), "empty: the gift cards");
        // Without a currencyCode the bounds do nothing (xoxoday-api.md §3.2).
        let all = ids(&c.vouchers(&obj(json!({"limit":500,"page":1})), "").unwrap());
        for bounds in [json!([{"key":"minPrice","value":200}]), json!([{"key":"minPrice","value":200},{"key":"maxPrice","value":300}]), json!([{"key":"maxPrice","value":1},{"key":"currencyCode","value":""}])] {
            assert_eq!(ids(&c.vouchers(&obj(json!({"limit":500,"page":1,"filters":bounds})), "").unwrap()), all, "{bounds}");
        }

        let inc = c.vouchers(&obj(json!({"limit":50,"page":1,"includeProducts":"10100, 10201,99","excludeProducts":"10201"})), "").unwrap();
        assert_eq!(ids(&inc), vec![10_100]);
        // An entry that is no id names no product: a list of such entries
        // alone includes nothing (never "no filter"); beside an id, that id.
        let some = |inc: &str, exc: &str| {
            ids(&c.vouchers(&obj(json!({"limit":0,"page":1,"includeProducts":inc,"excludeProducts":exc})), "").unwrap())
        };
        for none in ["MER-1", "abc", " abc , MER-1 ", "99", "abc,,"] {
            assert_eq!(some(none, ""), Vec::<u64>::new(), "includeProducts {none:?}");
        }
        assert_eq!(some("abc,10201", ""), vec![10_201]);
        assert_eq!(some("MER-1, 10100 ,x", "abc"), vec![10_100]);
        // No entry at all: no filter.
        for all in ["", " ", ",", " , ,"] {
            assert_eq!(some(all, "").len(), c.products.len(), "includeProducts {all:?}");
            assert_eq!(some("", all).len(), c.products.len(), "excludeProducts {all:?}");
        }
        assert_eq!(some("", "abc,MER-1").len(), c.products.len(), "excluding no product");
        assert_eq!(some("", "abc,10100").len(), c.products.len() - 1);

        let sorted = c
            .vouchers(
                &obj(json!({"limit":3,"page":1,"sort":{"field":"productId","order":"DESC"}})),
                "",
            )
            .unwrap();
        assert_eq!(
            ids(&sorted)[0],
            c.products.iter().map(|p| p.id).max().unwrap()
        );
        let by_name = c
            .vouchers(
                &obj(json!({"limit":500,"page":1,"sort":{"field":"name","order":"ASC"}})),
                "",
            )
            .unwrap();
        let names: Vec<String> = by_name
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_ascii_lowercase())
            .collect();
        assert!(names.windows(2).all(|w| w[0] <= w[1]));

        let fx = c
            .vouchers(&obj(json!({"limit":500,"page":1,"exchangeRate":1})), "")
            .unwrap();
        assert!(fx
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["exchangeRate"].is_number()));
        let nofx = c.vouchers(&obj(json!({"limit":500,"page":1})), "").unwrap();
        assert!(nofx
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["exchangeRate"].is_null()));
        assert!(nofx
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["tatInDays"] == "1 - 7"));
    }

    /// What Xoxoday documents for getVouchers is accepted, numeric strings
    /// and a PHP client's empty `sort` included; anything else is a 400,
    /// never silently read as something else.
    #[test]
    fn vouchers_accept_exactly_the_documented_forms() {
        let c = catalog();
        let ok = |v: Value| c.vouchers(&obj(v.clone()), "").unwrap_or_else(|e| panic!("{v}: {e:?}"));
        ok(json!({"limit":"10","page":"1","exchangeRate":"1","includeProducts":"","excludeProducts":"",
                  "sort":{"field":"","order":""},"filters":[]}));
        ok(json!({"limit":10.0,"page":1,"sort":[],"filters":null,"exchangeRate":0}));
        ok(json!({"limit":10,"page":1,"filters":[{"key":"minPrice","value":"10"},{"key":"currencyCode","value":"USD"}]}));
        ok(json!({"limit":10,"page":1,"filters":[{"key":"unknownKey","value":"x"}],"includeProducts":"10100"}));
        ok(json!({"limit":10,"page":1,"filters":[{"key":"maxPrice","value":100},{"key":"currencyCode","value":"USD"},{"key":"unknownKey","value":3}]}));
        // An empty sort keeps catalogue order; a DESC sort any case reverses.
        assert_eq!(ids(&ok(json!({"limit":3,"page":1,"sort":{"field":"","order":""}}))),
                   ids(&ok(json!({"limit":3,"page":1}))));
        assert_eq!(ids(&ok(json!({"limit":1,"page":1,"sort":{"field":"productId","order":"desc"}})))[0],
                   c.products.iter().map(|p| p.id).max().unwrap());
        for bad in [
            json!({"limit":" 10","page":1}),
            json!({"limit":"10.0","page":1}),
            json!({"limit":true,"page":1}),
            json!({"limit":10,"page":null}),
            json!({"limit":10,"page":1,"exchangeRate":2}),
            json!({"limit":10,"page":1,"exchangeRate":true}),
            json!({"limit":10,"page":1,"includeProducts":[10100]}),
            // "comma-separated product-ID strings" (xoxoday-api.md §3.2).
            json!({"limit":10,"page":1,"includeProducts":10100}),
            json!({"limit":10,"page":1,"excludeProducts":10101}),
            json!({"limit":10,"page":1,"filters":[{"key":"productName","value":7}]}),
            json!({"limit":10,"page":1,"filters":[{"key":"currencyCode","value":840}]}),
            json!({"limit":10,"page":1,"sort":"name"}),
            json!({"limit":10,"page":1,"sort":{"field":1}}),
            json!({"limit":10,"page":1,"filters":{"key":"country","value":"usa"}}),
            json!({"limit":10,"page":1,"filters":["country"]}),
            json!({"limit":10,"page":1,"filters":[{"value":"usa"}]}),
            json!({"limit":10,"page":1,"filters":[{"key":"country"}]}),
            json!({"limit":10,"page":1,"filters":[{"key":"country","value":true}]}),
            json!({"limit":10,"page":1,"filters":[{"key":"minPrice","value":"ten"}]}),
        ] {
            let e = c.vouchers(&obj(bad.clone()), "").unwrap_err();
            assert_eq!((e.status, e.error_id), (400, "PLE10001"), "{bad}");
        }
    }

    /// A delayed product's order waits the upper end of its `tatInDays`;
    /// a realtime product's none.
    #[test]
    fn turnaround_is_the_upper_end_of_tat() {
        assert_eq!(tat_upper_days("3"), Some(3));
        assert_eq!(tat_upper_days("1 - 7"), Some(7));
        assert_eq!(tat_upper_days("2-5"), Some(5));
        assert_eq!(tat_upper_days("soon"), None);
        let c = catalog();
        for p in &c.products {
            let tat = p.to_json("", false)["tatInDays"].clone();
            match tat.as_str() {
                Some("3") => assert_eq!(p.turnaround_days(), 3, "{}", p.id),
                Some("1 - 7") => assert_eq!(p.turnaround_days(), 7, "{}", p.id),
                _ => assert_eq!((p.delayed, p.turnaround_days()), (false, 0), "{}: {tat}", p.id),
            }
        }
        assert!(c.products.iter().any(|p| p.turnaround_days() == 3));
        assert!(c.products.iter().any(|p| p.turnaround_days() == 7));
    }
}
