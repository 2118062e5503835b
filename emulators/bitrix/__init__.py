"""A local Bitrix24 portal over real HTTP, seeded with the synthetic shop.

    from emulators.bitrix import BitrixEmulator
    with BitrixEmulator(customers=300, seed=42) as emu:
        emu.webhook_url  # http://127.0.0.1:PORT/rest/1/<token>/

Where the shop lives in Bitrix terms: the opt-out flag is the contact/company user field
UF_CRM_RS_NO_MARKETING ("Y"/"N"); a product's category is its section (SECTION_ID,
crm.productsection.list); its consumption cycle is product property 101, CODE RS_CYCLE_DAYS
(`PROPERTY_101: {"valueId", "value"}` in crm.product.list with `PROPERTY_*` selected).
"""

from .cli import run_standalone
from .service import BitrixEmulator, default_token
from .store import CYCLE_PROPERTY_CODE, CYCLE_PROPERTY_ID, OPT_OUT_FIELD

__all__ = ["BitrixEmulator", "run_standalone", "default_token", "OPT_OUT_FIELD", "CYCLE_PROPERTY_ID",
           "CYCLE_PROPERTY_CODE"]
