"""The portal's rows: compact slots objects holding raw values (ints, floats, unix times).

How they look on the wire is in fields.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MULTIFIELDS = ("PHONE", "EMAIL", "WEB", "IM")


@dataclass(slots=True, eq=False)
class Contact:
    id: int
    name: str
    last_name: str
    second_name: str = ""
    post: str = ""
    type_id: str = "CLIENT"
    source_id: str = "WEB"
    company_id: int | None = None
    birthdate: int | None = None  # unix time of the day's midnight
    assigned: int = 1
    created_by: int = 1
    modify_by: int = 1
    created: int = 0
    modified: int = 0
    comments: str = ""
    opened: bool = True
    export: bool = True
    # Multifield values: [id, VALUE_TYPE, VALUE] per entry; a dict only when there are any.
    multi: dict | None = None
    uf: dict = field(default_factory=dict)
    honorific: str | None = None  # a STATUS_ID of the HONORIFIC list ("HNR_RU_1" = "г-н"), or unset


@dataclass(slots=True, eq=False)
class Company:
    id: int
    title: str
    company_type: str = "CUSTOMER"
    industry: str = "OTHER"
    assigned: int = 1
    created_by: int = 1
    modify_by: int = 1
    created: int = 0
    modified: int = 0
    comments: str = ""
    opened: bool = True
    multi: dict | None = None
    uf: dict = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class Deal:
    id: int
    title: str | None  # None: the seeded default "Заказ #<id>" (saves memory at a million deals)
    stage_id: str
    category_id: int = 0
    semantic: str = "P"  # P / S / F, derived from the stage
    type_id: str = "SALE"
    currency: str = "RUB"
    opportunity: float = 0.0
    is_manual: bool = False
    contact_ids: tuple = ()
    company_id: int | None = None
    begindate: int | None = None  # None: the day the deal was created
    closedate: int = 0
    assigned: int = 1
    created_by: int = 1
    modify_by: int = 1
    created: int = 0
    modified: int = 0
    moved_time: int = 0
    comments: str = ""
    source_id: str = "STORE"
    is_return: bool = False
    opened: bool = True
    uf: dict | None = None
    originator_id: str | None = None  # an external system's name and its id for the deal
    origin_id: str | None = None


@dataclass(slots=True, eq=False)
class ProductRow:
    """A deal's product row; discounts, taxes and measures are the portal defaults (not stored)."""

    id: int
    owner_id: int
    product_id: int
    product_name: str
    price: float
    quantity: float
    sort: int = 10
    owner_type = "D"
    discount_type_id = 2
    discount_rate = 0.0
    discount_sum = 0.0
    tax_rate = None
    tax_included = True
    measure_code = 796
    measure_name = "шт"


@dataclass(slots=True, eq=False)
class DiscountedRow(ProductRow):
    """A row sold on a promo: `price` is after the discount, `discount_sum` the money off one unit.

    Doc: api-reference/crm/universal/product-rows/crm-item-productrow-list.md - discountTypeId 2 is a
    percentage (`discountRate`), `discountSum` the discount of one unit either way.
    """

    discount_rate: float = 0.0  # type: ignore[misc]
    discount_sum: float = 0.0  # type: ignore[misc]


@dataclass(slots=True, eq=False)
class Product:
    id: int
    name: str
    price: float
    currency: str
    section_id: int | None
    xml_id: str
    cycle_days: int | None = None
    active: bool = True
    catalog_id: int = 25
    measure: int = 5
    description: str = ""
    created: int = 0
    term_days: int | None = None  # property 102 RS_TERM_DAYS: how long a subscription or service plan runs


@dataclass(slots=True, eq=False)
class Section:
    id: int
    name: str
    code: str
    catalog_id: int = 25


@dataclass(slots=True, eq=False)
class User:
    id: int
    name: str
    last_name: str
    email: str
    active: bool = True
    position: str = "Менеджер по продажам"
    is_admin: bool = False


@dataclass(slots=True, eq=False)
class Task:
    id: int
    title: str
    responsible_id: int
    created_by: int
    created: int
    changed: int
    description: str = ""
    deadline: int | None = None
    status: int = 2
    priority: int = 1
    group_id: int = 0
    tags: tuple = ()
    crm: tuple = ()  # UF_CRM_TASK bindings: "D_12", "C_5"
    closed: int | None = None


@dataclass(slots=True, eq=False)
class Comment:
    id: int
    entity_type: str
    entity_id: int
    comment: str
    author_id: int
    created: int


@dataclass(slots=True, eq=False)
class Activity:
    id: int
    owner_type_id: int
    owner_id: int
    title: str
    description: str
    deadline: int
    responsible_id: int
    created: int
    completed: bool = False
    type_id: int = 6  # 6 a to-do (crm.activity.todo.add); 4 an e-mail (crm.activity.add)
    direction: int = 0
    origin_id: str = ""
    originator_id: str = ""
    communications: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class UserField:
    id: int
    entity_id: str  # CRM_CONTACT, CRM_COMPANY, CRM_DEAL
    field_name: str
    user_type_id: str
    xml_id: str | None = None
    sort: int = 100
    multiple: bool = False
    mandatory: bool = False
    show_filter: str = "N"
    show_in_list: bool = True
    edit_in_list: bool = True
    is_searchable: bool = False
    settings: dict = field(default_factory=dict)
    label: str = ""
    items: list = field(default_factory=list)  # enumeration values


@dataclass(slots=True, eq=False)
class Status:
    id: int
    entity_id: str
    status_id: str
    name: str
    sort: int
    system: bool
    category_id: int | None
    semantics: str | None  # None (in progress), "S", "F"
    color: str = "#39A8EF"
