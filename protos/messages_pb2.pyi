from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MessageKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_KIND_UNSPECIFIED: _ClassVar[MessageKind]
    CONSULTATION: _ClassVar[MessageKind]
    DIMONA: _ClassVar[MessageKind]
    DMFA: _ClassVar[MessageKind]
    DRS: _ClassVar[MessageKind]
    INTEGRATION: _ClassVar[MessageKind]
    DEINTEGRATION: _ClassVar[MessageKind]
    MUTATION: _ClassVar[MessageKind]

class DimonaType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIMONA_TYPE_UNSPECIFIED: _ClassVar[DimonaType]
    IN: _ClassVar[DimonaType]
    OUT: _ClassVar[DimonaType]
    UPDATE: _ClassVar[DimonaType]
    CANCEL: _ClassVar[DimonaType]

class RiskFamily(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RISK_FAMILY_UNSPECIFIED: _ClassVar[RiskFamily]
    SICKNESS_MATERNITY: _ClassVar[RiskFamily]
    WORK_ACCIDENT: _ClassVar[RiskFamily]
    UNEMPLOYMENT: _ClassVar[RiskFamily]

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    DELIVERED: _ClassVar[Outcome]
    QUEUED: _ClassVar[Outcome]
    DENIED: _ClassVar[Outcome]
    INVALID: _ClassVar[Outcome]
    FAILED: _ClassVar[Outcome]
MESSAGE_KIND_UNSPECIFIED: MessageKind
CONSULTATION: MessageKind
DIMONA: MessageKind
DMFA: MessageKind
DRS: MessageKind
INTEGRATION: MessageKind
DEINTEGRATION: MessageKind
MUTATION: MessageKind
DIMONA_TYPE_UNSPECIFIED: DimonaType
IN: DimonaType
OUT: DimonaType
UPDATE: DimonaType
CANCEL: DimonaType
RISK_FAMILY_UNSPECIFIED: RiskFamily
SICKNESS_MATERNITY: RiskFamily
WORK_ACCIDENT: RiskFamily
UNEMPLOYMENT: RiskFamily
OUTCOME_UNSPECIFIED: Outcome
DELIVERED: Outcome
QUEUED: Outcome
DENIED: Outcome
INVALID: Outcome
FAILED: Outcome

class Envelope(_message.Message):
    __slots__ = ("message_id", "kind", "subject_niss", "subject_kbo", "related_niss", "dataset", "purpose", "deliberation", "sender", "payload", "as_of", "citizen")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_NISS_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_KBO_FIELD_NUMBER: _ClassVar[int]
    RELATED_NISS_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    DELIBERATION_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    CITIZEN_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    kind: MessageKind
    subject_niss: str
    subject_kbo: str
    related_niss: _containers.RepeatedScalarFieldContainer[str]
    dataset: str
    purpose: str
    deliberation: str
    sender: str
    payload: bytes
    as_of: str
    citizen: CitizenAssertion
    def __init__(self, message_id: _Optional[str] = ..., kind: _Optional[_Union[MessageKind, str]] = ..., subject_niss: _Optional[str] = ..., subject_kbo: _Optional[str] = ..., related_niss: _Optional[_Iterable[str]] = ..., dataset: _Optional[str] = ..., purpose: _Optional[str] = ..., deliberation: _Optional[str] = ..., sender: _Optional[str] = ..., payload: _Optional[bytes] = ..., as_of: _Optional[str] = ..., citizen: _Optional[_Union[CitizenAssertion, _Mapping]] = ...) -> None: ...

class CitizenAssertion(_message.Message):
    __slots__ = ("niss", "expires", "audience", "assertion_id", "means", "signature")
    NISS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    ASSERTION_ID_FIELD_NUMBER: _ClassVar[int]
    MEANS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    niss: str
    expires: int
    audience: str
    assertion_id: str
    means: str
    signature: bytes
    def __init__(self, niss: _Optional[str] = ..., expires: _Optional[int] = ..., audience: _Optional[str] = ..., assertion_id: _Optional[str] = ..., means: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class ConsultationRequest(_message.Message):
    __slots__ = ("dataset", "fields")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, dataset: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class ConsultationAnswer(_message.Message):
    __slots__ = ("agency", "dataset", "found", "fields")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    agency: str
    dataset: str
    found: bool
    fields: _containers.ScalarMap[str, str]
    def __init__(self, agency: _Optional[str] = ..., dataset: _Optional[str] = ..., found: bool = ..., fields: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DimonaDeclaration(_message.Message):
    __slots__ = ("type", "employer_kbo", "worker_niss", "start_date", "end_date", "joint_committee", "worker_type", "period_id")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    EMPLOYER_KBO_FIELD_NUMBER: _ClassVar[int]
    WORKER_NISS_FIELD_NUMBER: _ClassVar[int]
    START_DATE_FIELD_NUMBER: _ClassVar[int]
    END_DATE_FIELD_NUMBER: _ClassVar[int]
    JOINT_COMMITTEE_FIELD_NUMBER: _ClassVar[int]
    WORKER_TYPE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_ID_FIELD_NUMBER: _ClassVar[int]
    type: DimonaType
    employer_kbo: str
    worker_niss: str
    start_date: str
    end_date: str
    joint_committee: str
    worker_type: str
    period_id: str
    def __init__(self, type: _Optional[_Union[DimonaType, str]] = ..., employer_kbo: _Optional[str] = ..., worker_niss: _Optional[str] = ..., start_date: _Optional[str] = ..., end_date: _Optional[str] = ..., joint_committee: _Optional[str] = ..., worker_type: _Optional[str] = ..., period_id: _Optional[str] = ...) -> None: ...

class DmfaLine(_message.Message):
    __slots__ = ("worker_niss", "worker_code", "gross_wage_cents", "days_worked", "hours_per_week_centi", "joint_committee")
    WORKER_NISS_FIELD_NUMBER: _ClassVar[int]
    WORKER_CODE_FIELD_NUMBER: _ClassVar[int]
    GROSS_WAGE_CENTS_FIELD_NUMBER: _ClassVar[int]
    DAYS_WORKED_FIELD_NUMBER: _ClassVar[int]
    HOURS_PER_WEEK_CENTI_FIELD_NUMBER: _ClassVar[int]
    JOINT_COMMITTEE_FIELD_NUMBER: _ClassVar[int]
    worker_niss: str
    worker_code: str
    gross_wage_cents: int
    days_worked: int
    hours_per_week_centi: int
    joint_committee: str
    def __init__(self, worker_niss: _Optional[str] = ..., worker_code: _Optional[str] = ..., gross_wage_cents: _Optional[int] = ..., days_worked: _Optional[int] = ..., hours_per_week_centi: _Optional[int] = ..., joint_committee: _Optional[str] = ...) -> None: ...

class DmfaDeclaration(_message.Message):
    __slots__ = ("employer_kbo", "quarter", "lines")
    EMPLOYER_KBO_FIELD_NUMBER: _ClassVar[int]
    QUARTER_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    employer_kbo: str
    quarter: str
    lines: _containers.RepeatedCompositeFieldContainer[DmfaLine]
    def __init__(self, employer_kbo: _Optional[str] = ..., quarter: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[DmfaLine, _Mapping]]] = ...) -> None: ...

class DrsDeclaration(_message.Message):
    __slots__ = ("family", "scenario", "employer_kbo", "worker_niss", "event_date", "fields")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    SCENARIO_FIELD_NUMBER: _ClassVar[int]
    EMPLOYER_KBO_FIELD_NUMBER: _ClassVar[int]
    WORKER_NISS_FIELD_NUMBER: _ClassVar[int]
    EVENT_DATE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    family: RiskFamily
    scenario: int
    employer_kbo: str
    worker_niss: str
    event_date: str
    fields: _containers.ScalarMap[str, str]
    def __init__(self, family: _Optional[_Union[RiskFamily, str]] = ..., scenario: _Optional[int] = ..., employer_kbo: _Optional[str] = ..., worker_niss: _Optional[str] = ..., event_date: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DirectoryIntegration(_message.Message):
    __slots__ = ("niss", "sector", "quality_code", "phase_code", "start", "end")
    NISS_FIELD_NUMBER: _ClassVar[int]
    SECTOR_FIELD_NUMBER: _ClassVar[int]
    QUALITY_CODE_FIELD_NUMBER: _ClassVar[int]
    PHASE_CODE_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    niss: str
    sector: int
    quality_code: int
    phase_code: int
    start: str
    end: str
    def __init__(self, niss: _Optional[str] = ..., sector: _Optional[int] = ..., quality_code: _Optional[int] = ..., phase_code: _Optional[int] = ..., start: _Optional[str] = ..., end: _Optional[str] = ...) -> None: ...

class MutationNotice(_message.Message):
    __slots__ = ("niss", "change", "effective_date", "fields")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NISS_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_DATE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    niss: str
    change: str
    effective_date: str
    fields: _containers.ScalarMap[str, str]
    def __init__(self, niss: _Optional[str] = ..., change: _Optional[str] = ..., effective_date: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Delivery(_message.Message):
    __slots__ = ("agency", "via", "outcome", "reply", "detail")
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    VIA_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    agency: str
    via: str
    outcome: Outcome
    reply: bytes
    detail: str
    def __init__(self, agency: _Optional[str] = ..., via: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., reply: _Optional[bytes] = ..., detail: _Optional[str] = ...) -> None: ...

class ExchangeReply(_message.Message):
    __slots__ = ("message_id", "outcome", "forwarded", "deliveries", "audit_index", "deliberation", "detail")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    FORWARDED_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    AUDIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    DELIBERATION_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    outcome: Outcome
    forwarded: bool
    deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    audit_index: int
    deliberation: str
    detail: str
    def __init__(self, message_id: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., forwarded: bool = ..., deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ..., audit_index: _Optional[int] = ..., deliberation: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class Forward(_message.Message):
    __slots__ = ("agency", "sender", "envelope", "audit_index", "via")
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    AUDIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    VIA_FIELD_NUMBER: _ClassVar[int]
    agency: str
    sender: str
    envelope: bytes
    audit_index: int
    via: str
    def __init__(self, agency: _Optional[str] = ..., sender: _Optional[str] = ..., envelope: _Optional[bytes] = ..., audit_index: _Optional[int] = ..., via: _Optional[str] = ...) -> None: ...

class AgencyReply(_message.Message):
    __slots__ = ("agency", "payload", "status")
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    agency: str
    payload: bytes
    status: str
    def __init__(self, agency: _Optional[str] = ..., payload: _Optional[bytes] = ..., status: _Optional[str] = ...) -> None: ...
