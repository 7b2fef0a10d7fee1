"""The Persian e-mails of the default rules: what each built-in (English) e-mail says, for a reader whose
profile's locale is Persian (``fa``, ``fa-IR``). Sandboxed Jinja2 like any rule's templates (see
:mod:`kariz_notifications.domain.templates`): times in the Persian calendar, numbers in Persian digits.
Ids (``L-12``, ``D-3``) stay as they are: a reader copies them into a search."""

from __future__ import annotations

from kariz_notifications.domain.templates import EmailTexts

PERSIAN_DEFAULTS: dict[str, EmailTexts] = {
    "lead-qualified": EmailTexts(
        subject=(
            "سرنخ واجد شرایط شد: {{ contact.first_name }} {{ contact.last_name }} از {{ company.name }}، "
            "امتیاز {{ score | number }}"
        ),
        text=(
            "{{ contact.first_name }} {{ contact.last_name }} از {{ company.name }} به آستانهٔ واجد شرایط "
            "بودن رسید و اکنون با شماست.\n\n"
            "سرنخ: {{ lead_id }}\n"
            "رایانامه: {{ contact.email }}\n"
            "امتیاز: {{ score | number }} (آستانه {{ threshold | number }})\n"
            "منبع: {{ source }}\n"
        ),
    ),
    "deal-moved-back": EmailTexts(
        subject="معامله به عقب برگشت: {{ deal_id }} از {{ from_stage }} به {{ to_stage }}",
        text=(
            "معامله {{ deal_id }} از مرحلهٔ {{ from_stage }} به {{ to_stage }} برگشت.\n\n"
            "خط فروش: {{ pipeline }}\n"
            "مبلغ: {{ amount | money(currency) }}\n"
            "سرنخ: {{ lead_id }}\n"
            "{% if note %}یادداشت: {{ note }}\n{% endif %}"
        ),
    ),
    "handover": EmailTexts(
        subject="تحویل مشتری: {{ account_name }}، {{ amount | money(currency) }}، مسئول {{ owner }}",
        text=(
            "{{ account_name }} مشتری جدید است. لطفاً راه‌اندازی و پشتیبانی را آغاز کنید.\n\n"
            "حساب: {{ account_name }} ({{ account_id }})\n"
            "مبلغ: {{ amount | money(currency) }}\n"
            "مسئول فروش: {{ owner }}\n"
            "معامله: {{ deal_id }}\n"
            "تاریخ برد: {{ won_at | when }}\n"
        ),
    ),
    "deal-won": EmailTexts(
        subject="معامله برنده شد: {{ account_name }}، {{ amount | money(currency) }}",
        text=(
            "{{ account_name }} قرارداد را امضا کرد: معامله {{ deal_id }} با موفقیت بسته شد.\n\n"
            "حساب: {{ account_name }} ({{ account_id }})\n"
            "مبلغ: {{ amount | money(currency) }}\n"
            "مسئول: {{ owner }}\n"
            "تاریخ برد: {{ won_at | when }}\n"
        ),
    ),
    "deal-lost": EmailTexts(
        subject="معامله از دست رفت: {{ account_name }} ({{ reason }})",
        text=(
            "معامله {{ deal_id }} با {{ account_name }} در مرحلهٔ {{ lost_at_stage }} از دست رفت.\n\n"
            "دلیل: {{ reason }}\n"
            "حساب: {{ account_name }} ({{ account_id }})\n"
            "مبلغ: {{ amount | money(currency) }}\n"
        ),
    ),
    "deal-stalled": EmailTexts(
        subject="معامله متوقف: {{ deal_id }} در مرحله {{ stage }}",
        text=(
            "معامله {{ deal_id }} {{ days_in_stage | number }} روز در مرحله {{ stage }} ({{ pipeline }}) "
            "مانده است، بیش از سقف {{ rot_days | number }} روز آن: آن را جلو ببرید یا آنچه با مشتری "
            "می‌گذرد را ثبت کنید.\n\n"
            "معامله: {{ deal_id }}\n"
            "مسئول: {{ owner }}\n"
            "مرحله: {{ stage }} ({{ pipeline }})\n"
            "{% if amount %}مبلغ: {{ amount | money(currency) }}\n{% endif %}"
            "ورود به مرحله: {{ entered_stage_at | when }}\n"
        ),
    ),
    "quote-approval-requested": EmailTexts(
        subject=(
            "پیش‌فاکتور برای تأیید: {{ deal_id }} نسخهٔ {{ quote_number | number }}، "
            "تخفیف {{ max_discount_pct | number }}٪"
        ),
        text=(
            "پیش‌فاکتور نسخهٔ {{ quote_number | number }} {{ owner }} روی معاملهٔ {{ deal_id }} "
            "{{ max_discount_pct | number }}٪ تخفیف می‌دهد، بیش از سقف {{ discount_limit_pct | number }}٪: "
            "تا شما تأیید نکنید فرستاده نمی‌شود.\n\n"
            "معامله: {{ deal_id }}\n"
            "پیش‌فاکتور: {{ quote_id }}\n"
            "مسئول: {{ owner }}\n"
            "جمع: {{ total | money(currency) }}\n"
            "زمان درخواست: {{ requested_at | when }}\n"
        ),
    ),
    "quote-expired": EmailTexts(
        subject="پیش‌فاکتور منقضی شد: {{ deal_id }} نسخهٔ {{ quote_number | number }}",
        text=(
            "پیش‌فاکتور نسخهٔ {{ quote_number | number }} روی معاملهٔ {{ deal_id }} بی‌پاسخ به تاریخ "
            "اعتبارش رسید: از مشتری بپرسید یا نسخهٔ تازه‌ای بفرستید.\n\n"
            "معامله: {{ deal_id }}\n"
            "پیش‌فاکتور: {{ quote_id }}\n"
            "معتبر تا: {{ valid_until | when }}\n"
        ),
    ),
    "rfp-response-due": EmailTexts(
        subject=(
            "{% if kind == 'overdue' %}پاسخ RFP دیر شده{% else %}موعد پاسخ RFP نزدیک است{% endif %}: "
            "{{ account_name }} ({{ issuer }})"
        ),
        text=(
            "{% if kind == 'overdue' %}موعد پاسخ به RFP {{ issuer }} روی معاملهٔ {{ deal_id }} گذشته است."
            "{% else %}موعد پاسخ به RFP {{ issuer }} روی معاملهٔ {{ deal_id }} نزدیک است.{% endif %}\n\n"
            "معامله: {{ deal_id }}\n"
            "حساب: {{ account_name }} ({{ account_id }})\n"
            "صادرکننده: {{ issuer }}\n"
            "موعد: {{ response_due_at | when }}\n"
        ),
    ),
    "follow-up-due": EmailTexts(
        subject="پیگیری سررسید شد: {{ title }} (سرنخ {{ lead_id }})",
        text=(
            "پیگیری شما برای سرنخ {{ lead_id }} سررسید شده است: {{ title }}.\n\n"
            "سرنخ: {{ lead_id }}\n"
            "{% if deal_id %}معامله: {{ deal_id }}\n{% endif %}"
            "سررسید: {{ due_at | when }}\n"
        ),
    ),
    "response-overdue": EmailTexts(
        subject="پاسخ دیر شده: سرنخ {{ lead_id }} ({{ owner }})",
        text=(
            "سرنخ {{ lead_id }} هنوز جدید است: {{ owner }} در مهلت پاسخ به آن رسیدگی نکرده است.\n\n"
            "سرنخ: {{ lead_id }}\n"
            "مسئول: {{ owner }}\n"
            "منبع: {{ source }}\n"
            "ثبت: {{ captured_at | when }}\n"
            "مهلت: {{ due_at | when }}\n"
        ),
    ),
    "lead-queued": EmailTexts(
        subject="سرنخ در صف تیم {{ team }}: {{ lead_id }}",
        text=(
            "سرنخ {{ lead_id }} در صف تیم {{ team }} منتظر است: کسی در دسترس نبود ({{ reason }}). "
            "لطفاً آن را به یک کارشناس بسپارید.\n\n"
            "سرنخ: {{ lead_id }}\n"
            "تیم: {{ team }}\n"
            "قاعده: {{ rule }}\n"
            "ورود به صف: {{ queued_at | when }}\n"
        ),
    ),
    "lead-reassigned": EmailTexts(
        subject="سرنخ جدید برای شما: {{ lead_id }}",
        text=(
            "سرنخ {{ lead_id }} اکنون با شماست، از {{ from_owner }}.\n\n"
            "سرنخ: {{ lead_id }}\n"
            "از: {{ from_owner }}\n"
            "دلیل: {{ reason }}\n"
            "{% if actor %}توسط: {{ actor }}\n{% endif %}"
            "زمان: {{ reassigned_at | when }}\n"
        ),
    ),
}
